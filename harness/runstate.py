"""Whether a tagged run is alive, and what it last said about itself.

A live run holds an exclusive lock on `lock` (released by the kernel however the process ends)
and keeps `state.json` current: running, paused (and why), finished (and which budget ended it)
or stopped (by a signal or an error). A run whose lock is free but whose state still says
running or paused died without saying so.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any, TextIO

from harness.errors import OvernightError


class RunLock:
    """One live run per tag: an exclusive lock on a file holding the owner's pid."""

    def __init__(self, root: Path) -> None:
        self.path = root / "lock"
        self.handle: TextIO | None = None

    def __enter__(self) -> RunLock:
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "?"
            handle.close()
            raise OvernightError(
                f"{self.path}: tag {self.path.parent.name!r} is already running (pid {owner}); "
                "wait for it or use another --tag"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self.handle = handle
        return self

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None:
            self.handle.seek(0)
            self.handle.truncate()
            self.handle.close()
            self.handle = None


def is_locked(root: Path) -> bool:
    lock = root / "lock"
    if not lock.exists():
        return False
    with open(lock) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def write_state(root: Path, state: str, **fields: Any) -> None:
    """Replace state.json atomically (write, fsync, rename)."""
    payload = {"state": state, "pid": os.getpid(), "since": round(time.time(), 3), **fields}
    atomic_write(root / "state.json", json.dumps(payload) + "\n")


def read_state(root: Path) -> dict[str, Any]:
    try:
        return json.loads((root / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def describe(root: Path) -> dict[str, Any]:
    """`alive`, `state` (running | paused | finished | stopped | dead) and why."""
    state = read_state(root)
    alive = is_locked(root)
    name = state.get("state", "dead" if not alive else "running")
    if not alive and name in ("running", "paused"):
        name = "dead"
    report: dict[str, Any] = {"alive": alive, "state": name}
    if name == "running" and state.get("running"):
        report["running"] = state["running"]  # --workers N: the experiments being measured
    if name in ("paused", "finished", "stopped"):
        report["reason"] = state.get("reason", "")
    if name == "dead":
        report["reason"] = (
            "the process ended without finishing; `overnight run` with this tag resumes it"
        )
    return report


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
