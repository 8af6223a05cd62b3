"""Git state of the code being verified, and of repro itself when run from a checkout.

Refs, the branch and remotes are read in-process by GitPython from the files in .git
(resolving a ref needs no object lookup, which would start ``git cat-file``). The
working-tree state is the one thing that needs the git binary: one ``git status`` gives
both the dirty flag and the count of changed files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import repro
from repro.manifest.probe import guarded, read_each, unavailable
from repro.manifest.redact import strip_credentials

_NOT_A_REPOSITORY = "not a git repository"


def parse_status(porcelain_z: str) -> tuple[bool, int]:
    """(dirty, changed files) from ``git status --porcelain=v1 -z``; untracked files count
    as changed but do not make the tree dirty (as ``git describe --dirty``)."""
    entries = porcelain_z.split("\0")
    dirty, changed, index = False, 0, 0
    while index < len(entries):
        entry = entries[index]
        index += 1
        if not entry:
            continue
        status = entry[:2]
        changed += 1
        dirty = dirty or status != "??"
        if "R" in status or "C" in status:
            index += 1  # a rename or copy is followed by its source path
    return dirty, changed


def _in_a_work_tree(path: Path, *, search_parents: bool) -> bool:
    """A ``.git`` (folder or worktree file) at ``path`` or above: outside one, GitPython
    (a tenth of a second to import) is never loaded."""
    folders = [path, *path.parents] if search_parents else [path]
    return any((folder / ".git").exists() for folder in folders)


def _open(path: Path, *, search_parents: bool) -> Any:
    if not _in_a_work_tree(path.resolve(), search_parents=search_parents):
        return None
    import git

    try:
        return git.Repo(path, search_parent_directories=search_parents)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None


def _head_sha(repository: Any) -> Any:
    import git

    try:
        return git.SymbolicReference.dereference_recursive(repository, "HEAD")
    except ValueError:  # HEAD names a branch that has no commit yet
        return unavailable("the repository has no commits yet")


def _describe(repository: Any) -> dict[str, Any]:
    status = guarded(
        lambda: parse_status(repository.git.status("--porcelain=v1", "-z", "--untracked-files=all"))
    )
    return read_each(
        {
            "sha": lambda: _head_sha(repository),
            "detached": lambda: repository.head.is_detached,
            "branch": lambda: (
                None if repository.head.is_detached else repository.active_branch.name
            ),
            "dirty": lambda: status[0] if isinstance(status, tuple) else status,
            "changed_files": lambda: status[1] if isinstance(status, tuple) else status,
            "remotes": lambda: {
                remote.name: strip_credentials(remote.url) for remote in repository.remotes
            },
        }
    )


def repository_state(path: str | Path | None = None) -> Any:
    """The repository holding ``path`` (default: the working directory), or why there is none."""
    repository = _open(Path(path) if path is not None else Path.cwd(), search_parents=True)
    if repository is None:
        return unavailable(_NOT_A_REPOSITORY)
    with repository:
        return _describe(repository)


def repro_checkout_sha() -> Any:
    """repro's own commit when it runs from a checkout (its package folder's parent)."""
    checkout = Path(repro.__file__).resolve().parent.parent
    if not (checkout / ".git").exists():
        return unavailable("repro is not installed from a git checkout")
    repository = _open(checkout, search_parents=False)
    if repository is None:
        return unavailable("repro is not installed from a git checkout")
    with repository:
        return _head_sha(repository)


def head_sha(path: str | Path | None = None) -> str | None:
    """The commit checked out at ``path`` (default: the working directory), or None; no git process."""
    repository = _open(Path(path) if path is not None else Path.cwd(), search_parents=True)
    if repository is None:
        return None
    with repository:
        sha = _head_sha(repository)
    return sha if isinstance(sha, str) else None
