"""The uids that untrusted code and the evaluator run as, in containers and with --sandbox local.

Training and evaluation run as the harness's own uid when it is not root (so it can clean up what
they write), else as `nobody`. The workers that `call_train` starts run as a third uid, used by
nothing else, that cannot read the private data or the evaluator's memory.
"""

from __future__ import annotations

import os

NOBODY = 65534
WORKER = 65532


def run_ids() -> tuple[int, int]:
    """(uid, gid) of training and evaluation."""
    if os.getuid() == 0:
        return NOBODY, NOBODY
    return os.getuid(), os.getgid()


def worker_ids() -> tuple[int, int]:
    """(uid, gid) of call_train's workers: never the same as run_ids()."""
    uid = WORKER if run_ids()[0] != WORKER else WORKER - 1
    return uid, uid


def container_user() -> str:
    uid, gid = run_ids()
    return f"{uid}:{gid}"


def own_for_runs(path: os.PathLike[str] | str, mode: int) -> None:
    """Give a host folder to the uid runs use, with `mode` (chown only when the harness is root)."""
    uid, gid = run_ids()
    if os.getuid() == 0:
        os.chown(path, uid, gid)
    os.chmod(path, mode)
