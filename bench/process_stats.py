"""CPU time and resident memory of running processes and their descendants, from /proc.

The benches count what a path costs every process on the machine (client, helpers, sink,
broker), not only the process that times it; Linux only.
"""

from __future__ import annotations

import os
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name, or None once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def process_cpu_seconds(pid: int | None) -> float:
    """User + system CPU of a process (all its threads; 0 when it is gone)."""
    fields = _stat_fields(pid) if pid else None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS if fields else 0.0


def process_rss_bytes(pid: int) -> int:
    """Resident memory of one process (0 when it is gone)."""
    fields = _stat_fields(pid)
    return int(fields[21]) * PAGE_BYTES if fields else 0


def process_tree(pid: int) -> list[int]:
    """``pid`` and every living descendant (a service's helper processes belong to it)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, ()))
    return tree


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a process and its living descendants, plus what its reaped children used."""
    total = sum(process_cpu_seconds(p) for p in process_tree(pid))
    fields = _stat_fields(pid)
    if fields:  # cutime + cstime: children that exited and were waited for
        total += (int(fields[13]) + int(fields[14])) / CLOCK_TICKS
    return total


def tree_rss_bytes(pid: int) -> int:
    return sum(process_rss_bytes(p) for p in process_tree(pid))
