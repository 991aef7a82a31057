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

    A zombie does not: a Ray worker whose node died is one until something reaps it, and a
    machine whose PID 1 reaps nothing (some containers) keeps it one for good."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state = stat.read().rsplit(b")", 1)[1].split()[0]
    except FileNotFoundError:
        return os.path.isdir("/proc/self")  # it ended since kill(0), unless there is no /proc
    except (OSError, IndexError):
        return False
    return state in (b"Z", b"X")


def owner_alive(labels: dict[str, str]) -> bool:
    """Whether the process named by the owner label of these labels still runs."""
    owner = labels.get(LABEL_PID, "")
    return owner.isdigit() and alive(int(owner))
