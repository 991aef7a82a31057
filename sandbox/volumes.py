"""The size-capped output directory of an experiment: a tmpfs volume, labelled and always removed.

Docker unmounts a tmpfs volume, and so loses its files, when the last running container that
uses it stops. So the first run that mounts the volume also starts a keeper: a locked-down
container that only sleeps with the volume mounted read-only, so what training wrote is still
there for the evaluator. The keeper and the volume go when the experiment's context ends;
volumes left by a killed harness are removed by the next night.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from typing import Any

from harness.seams import RunSpec, RunStatus, Scratch, ScratchMount
from sandbox.hardening import container_options
from sandbox.users import run_ids

# `sleep` where the image has it; images without coreutils (distroless) still have python3.
KEEPER_COMMANDS = (
    ["sleep", "2147483647"],
    ["python3", "-c", "import signal\nwhile True: signal.pause()"],
)
_KEEPER_TIMEOUT_S = 24 * 3600.0


@contextlib.contextmanager
def tmpfs_volume(sandbox: Any, size_bytes: int) -> Iterator[Scratch]:
    """A labelled tmpfs volume of `size_bytes` owned by the runs' uid (DockerSandbox.scratch)."""
    from sandbox.docker_sandbox import LABEL, LABEL_PID, LABEL_RUN

    client = sandbox.client
    if not getattr(sandbox, "_stale_volumes_removed", False):
        remove_stale_volumes(client)
        sandbox._stale_volumes_removed = True
    uid, gid = run_ids()
    inodes = max(size_bytes // 4096, 1024)
    volume = client.volumes.create(
        name=f"overnight-{sandbox.run_id}-{uuid.uuid4().hex[:12]}",
        driver="local",
        driver_opts={
            "type": "tmpfs",
            "device": "tmpfs",
            "o": f"size={size_bytes},nr_inodes={inodes},mode=0755,uid={uid},gid={gid},nosuid,nodev",
        },
        labels={LABEL: "1", LABEL_RUN: sandbox.run_id, LABEL_PID: str(os.getpid())},
    )
    scratch = Scratch(name=volume.name, size_bytes=size_bytes)
    keepers = _keepers(sandbox)
    keepers[scratch.name] = None
    try:
        yield scratch
    finally:
        keeper = keepers.pop(scratch.name, None)
        if keeper is not None:
            _quietly(lambda: keeper.remove(force=True))
        _quietly(lambda: volume.remove(force=True))


def ensure_keepers(sandbox: Any, spec: RunSpec) -> None:
    """Before a run that mounts a scratch volume, start the volume's keeper if it has none yet."""
    from sandbox.docker_sandbox import LABEL, LABEL_PID, LABEL_PURPOSE, LABEL_RUN

    keepers = _keepers(sandbox)
    labels = {
        LABEL: "1",
        LABEL_RUN: sandbox.run_id,
        LABEL_PURPOSE: "keeper",
        LABEL_PID: str(os.getpid()),
    }
    for mount in spec.mounts:
        if not isinstance(mount, ScratchMount) or keepers.get(mount.scratch.name, 1) is not None:
            continue
        keep = RunSpec(
            image=spec.image,
            command=_keeper_command(sandbox, spec.image),
            mounts=[ScratchMount(mount.scratch, "/overnight/keep", read_only=True)],
            env={},
            timeout_s=_KEEPER_TIMEOUT_S,
            purpose="keeper",
        )
        options = container_options(keep, sandbox.limits, labels)
        keeper = keepers[mount.scratch.name] = sandbox.client.containers.create(**options)
        keeper.start()


def _keeper_command(sandbox: Any, image: str) -> list[str]:
    """`sleep` if the image has it (asked once per image: the init process would hide a missing
    program by exiting at once), else python3."""
    chosen: dict[str, list[str]] = sandbox.__dict__.setdefault("_keeper_commands", {})
    if image not in chosen:
        probe = RunSpec(image, ["sleep", "0"], [], {}, timeout_s=30, purpose="probe")
        works = sandbox.run(probe).status is RunStatus.OK
        chosen[image] = KEEPER_COMMANDS[0] if works else KEEPER_COMMANDS[1]
    return chosen[image]


def remove_stale_volumes(client) -> int:
    """Remove overnight's volumes whose owning process is gone; returns how many."""
    from sandbox.docker_sandbox import LABEL, LABEL_PID, _alive

    removed = 0
    for volume in client.volumes.list(filters={"label": LABEL}):
        owner = (volume.attrs.get("Labels") or {}).get(LABEL_PID, "")
        if owner.isdigit() and _alive(int(owner)):
            continue
        if _quietly(lambda v=volume: v.remove(force=True)):
            removed += 1
    return removed


def _keepers(sandbox: Any) -> dict[str, Any]:
    if not hasattr(sandbox, "_keepers"):
        sandbox._keepers = {}
    return sandbox._keepers


def _quietly(action) -> bool:
    """Cleanup that must not hide the real error: an engine that is gone leaves it to the next start."""
    import docker.errors
    import requests.exceptions

    try:
        action()
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        return False
    return True
