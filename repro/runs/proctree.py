"""The process tree, from each process's parent id in Linux's /proc (no other platform)."""

from __future__ import annotations

from pathlib import Path


def parent_pid(pid: int) -> int:
    """Field 4 of /proc/PID/stat; the command name before it may hold spaces and ')'."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid``, parents before their children."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = parent_pid(int(entry.name))
            except (OSError, ValueError, IndexError):  # exited meanwhile
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found
