"""Git probes on real repositories made in a temporary folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import git
import pytest

from repro.manifest.git_info import (
    parse_status,
    repository_state,
    repro_checkout_sha,
)

AUTHOR = git.Actor("Test", "test@example.com")


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[git.Repo]:
    with git.Repo.init(tmp_path / "work") as repository:
        (tmp_path / "work/train.py").write_text("print('hi')\n")
        repository.index.add(["train.py"])
        repository.index.commit("first", author=AUTHOR, committer=AUTHOR)
        repository.create_remote("origin", "https://user:secret@example.com/org/repo.git")
        yield repository  # closed afterwards: GitPython keeps `git cat-file` running


def test_clean_repository(repo: git.Repo) -> None:
    state = repository_state(Path(repo.working_dir))

    assert state["sha"] == repo.head.commit.hexsha
    assert state["branch"] == repo.active_branch.name
    assert state["detached"] is False
    assert (state["dirty"], state["changed_files"]) == (False, 0)
    assert state["remotes"] == {"origin": "https://example.com/org/repo.git"}
    assert "secret" not in repr(state)


def test_modified_and_untracked_files(repo: git.Repo) -> None:
    work = Path(repo.working_dir)
    (work / "notes.txt").write_text("untracked\n")
    (work / "data").mkdir()
    (work / "data/new.txt").write_text("untracked too\n")

    untracked_only = repository_state(work)
    (work / "train.py").write_text("print('changed')\n")
    modified = repository_state(work)

    assert (untracked_only["dirty"], untracked_only["changed_files"]) == (False, 2)
    assert (modified["dirty"], modified["changed_files"]) == (True, 3)


def test_subfolder_finds_the_repository(repo: git.Repo) -> None:
    sub = Path(repo.working_dir) / "sub"
    sub.mkdir()

    assert repository_state(sub)["sha"] == repo.head.commit.hexsha


def test_detached_head(repo: git.Repo) -> None:
    repo.head.reference = repo.head.commit

    state = repository_state(Path(repo.working_dir))

    assert (state["detached"], state["branch"]) == (True, None)


def test_repository_without_commits(tmp_path: Path) -> None:
    git.Repo.init(tmp_path).close()

    state = repository_state(tmp_path)

    assert state["sha"] == {"unavailable": "the repository has no commits yet"}


def test_not_a_repository_is_not_an_error(tmp_path: Path) -> None:
    assert repository_state(tmp_path) == {"unavailable": "not a git repository"}


def test_parse_status_counts_renames_once() -> None:
    porcelain = "R  new.py\0old.py\0 M a.py\0?? b.py\0"

    assert parse_status(porcelain) == (True, 3)
    assert parse_status("") == (False, 0)


def test_repro_checkout_sha_is_a_sha_or_says_why() -> None:
    sha = repro_checkout_sha()

    assert (isinstance(sha, str) and len(sha) == 40) or "unavailable" in sha


def test_outside_a_repository_gitpython_is_never_imported(tmp_path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from repro.manifest.git_info import repository_state, head_sha; "
        f"state = repository_state({str(tmp_path)!r}); sha = head_sha({str(tmp_path)!r}); "
        "print(state['unavailable'] if isinstance(state, dict) else state, sha, 'git' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-2:] == ["None", "False"], out.stdout
