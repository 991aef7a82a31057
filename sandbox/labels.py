"""The labels on everything overnight starts in the engine, and whether their owner still lives.

A leaf (standard library only): the sandbox, its volumes, its hardening probe and the image
builders all name their containers and volumes from here, and the cleanup of a harness that
died reads them back.
"""

from __future__ import annotations

import os

LABEL = "org.overnight"  # on every container and volume of ours
LABEL_RUN = "org.overnight.run"  # the run id of the night that made it
LABEL_PURPOSE = "org.overnight.purpose"  # setup | train | evaluate | keeper | probe
LABEL_PID = "org.overnight.pid"  # the harness process that owns it


def owned(run_id: str, purpose: str | None = None) -> dict[str, str]:
    """The labels of one thing this process makes for the run `run_id`."""
    labels = {LABEL: "1", LABEL_RUN: run_id, LABEL_PID: str(os.getpid())}
    if purpose is not None:
        labels[LABEL_PURPOSE] = purpose
    return labels


def alive(pid: int) -> bool:
    """Whether the harness process `pid` still runs (so what it owns must not be removed).

    An orphaned zombie does not: a Ray worker whose node died is one, left to PID 1, and a
    machine whose PID 1 reaps nothing (some containers) keeps it one for good. A zombie whose
    parent still lives is about to be waited for by it (a shell, a test, a supervisor that
    killed it), and counts as alive until then: its parent may still want what it owned."""
    return _runs(pid) and not _orphaned_zombie(pid)


def _orphaned_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except FileNotFoundError:
        return os.path.isdir("/proc/self")  # it ended since kill(0), unless there is no /proc
    except OSError:
        return False
    if len(fields) < 2 or fields[0] not in (b"Z", b"X"):
        return False
    parent = int(fields[1]) if fields[1].isdigit() else 0
    return parent <= 1 or not _runs(parent)


def _runs(pid: int) -> bool:
    """Whether `pid` exists (a zombie does): signal 0 checks without sending anything."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_alive(labels: dict[str, str]) -> bool:
    """Whether the process named by the owner label of these labels still runs."""
    owner = labels.get(LABEL_PID, "")
    return owner.isdigit() and alive(int(owner))
