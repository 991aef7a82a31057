"""Finding and killing every process a local run started (--sandbox local), on Linux through /proc.

A run's processes share its session and process group, but a child can leave both (setsid). So
while a run lives this process is a child subreaper: orphans are re-parented to it instead of
to init, and when the run ends every such newcomer is killed and reaped, until none is left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

_LINUX = sys.platform.startswith("linux")


class OrphansComeToUs:
    """Linux: while a run lives, its orphans are re-parented to this process (a subreaper), so
    children that outlive their parent, even in a session of their own, are found and killed."""

    def __enter__(self) -> OrphansComeToUs:
        self.before = set(_children_of(os.getpid()))
        _set_subreaper(True)
        return self

    def kill_all(self, exclude: int) -> None:
        for _ in range(200):
            strays = [p for p in _children_of(os.getpid()) if p not in self.before | {exclude}]
            if not strays:
                return
            for pid in strays:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)

    def __exit__(self, *exc: object) -> None:
        _set_subreaper(False)


def _set_subreaper(on: bool) -> None:
    if not _LINUX:
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError, ImportError):
        ctypes.CDLL(None, use_errno=True).prctl(36, int(on), 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def _children_of(pid: int) -> list[int]:
    if not _LINUX:
        return []
    children = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            children.append(int(entry.name))
        elif int(fields[1]) == pid:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(int(entry.name), os.WNOHANG)  # a zombie of ours: reap it
    return children


def processes_of(uid: int) -> int:
    """How many threads the uid runs now (RLIMIT_NPROC counts them all, not just ours)."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                status = Path(f"/proc/{entry.name}/status").read_text()
                fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
                if int(fields["Uid"].split()[0]) == uid:
                    count += int(fields.get("Threads", "1"))
    return count


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
