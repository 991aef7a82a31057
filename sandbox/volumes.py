"""The size-capped output directory of an experiment: a tmpfs volume, labelled and always removed.

Docker unmounts a tmpfs volume, and so loses its files, when the last running container that
uses it stops. So the first run that mounts the volume also starts a keeper: a locked-down
container that only waits with the volume mounted read-only, so what training wrote is still
there for the evaluator. The keeper has a deadline of its own, the experiment's lifetime (it is
the enforcer with no command; `sleep` in an image without python3), and is removed when the
experiment's context ends, or by the engine when its deadline passes with the harness gone.
Volumes (empty once no container mounts them) left by a killed harness go at the next night.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

from harness.seams import RunSpec, Scratch, ScratchMount
from sandbox.deadline import ENFORCER, keeper
from sandbox.hardening import Limits, container_options
from sandbox.labels import LABEL, LABEL_RUN, owned, owner_alive
from sandbox.users import run_ids

DEFAULT_LIFETIME_S = 3600.0  # a scratch area's lifetime when its user names none


class VolumeKeepers:
    """The scratch volumes of one sandbox, each with the keeper container that holds it mounted
    (None until the first run that mounts it), and when each may live until."""

    def __init__(self, limits: Limits, run_id: str) -> None:
        self.limits = limits
        self.run_id = run_id
        self._keepers: dict[str, Any] = {}
        self._lifetimes: dict[str, tuple[float, float]] = {}  # made at, may live (monotonic s)
        self._stale_removed = False

    @contextlib.contextmanager
    def volume(self, client: Any, size_bytes: int, lifetime_s: float) -> Iterator[Scratch]:
        """A labelled tmpfs volume of `size_bytes` owned by the runs' uid (DockerSandbox.scratch)."""
        if not self._stale_removed:
            remove_stale_volumes(client)
            self._stale_removed = True
        uid, gid = run_ids()
        inodes = max(size_bytes // 4096, 1024)
        options = f"size={size_bytes},nr_inodes={inodes},mode=0755,uid={uid},gid={gid},nosuid,nodev"
        volume = client.volumes.create(
            name=f"overnight-{self.run_id}-{uuid.uuid4().hex[:12]}",
            driver="local",
            driver_opts={"type": "tmpfs", "device": "tmpfs", "o": options},
            labels=owned(self.run_id),
        )
        scratch = Scratch(name=volume.name, size_bytes=size_bytes)
        self._keepers[scratch.name] = None
        self._lifetimes[scratch.name] = (time.monotonic(), lifetime_s)
        try:
            yield scratch
        finally:
            keeper = self._keepers.pop(scratch.name, None)
            self._lifetimes.pop(scratch.name, None)
            if keeper is not None:
                _quietly(lambda: keeper.remove(force=True))
            _quietly(lambda: volume.remove(force=True))

    def ensure(self, client: Any, spec: RunSpec, mode: str) -> None:
        """Before a run that mounts a scratch volume, start the volume's keeper if it has none
        yet, with what is left of the scratch area's lifetime as its deadline. `mode`: how
        containers of the spec's image get their deadline (deadline.ENFORCER or another)."""
        for mount in [m for m in spec.mounts if isinstance(m, ScratchMount)]:
            name = mount.scratch.name
            if self._keepers.get(name, 1) is not None:
                continue  # not a scratch volume of ours, or it has its keeper already
            born, lifetime = self._lifetimes[name]
            seconds = max(born + lifetime - time.monotonic(), 1.0)
            keep = RunSpec(
                image=spec.image,
                command=keeper(seconds) if mode == ENFORCER else ["sleep", f"{int(seconds)}"],
                mounts=[ScratchMount(mount.scratch, "/overnight/keep", read_only=True)],
                env={},
                timeout_s=seconds,
                purpose="keeper",
            )
            labels = owned(self.run_id, "keeper")
            options = container_options(keep, self.limits, labels, enforced=mode == ENFORCER)
            container = self._keepers[name] = client.containers.create(**options)
            container.start()


def remove_stale_volumes(client: Any) -> int:
    """Remove overnight's volumes whose owning process is gone; returns how many."""
    removed = 0
    for volume in client.volumes.list(filters={"label": LABEL}):
        if owner_alive(volume.attrs.get("Labels") or {}):
            continue
        if _quietly(lambda v=volume: v.remove(force=True)):
            removed += 1
    return removed


def remove_run_volumes(client: Any, run_id: str) -> int:
    """Remove the volumes of the run `run_id` (those no container still mounts); how many went.
    A harness killed mid-experiment leaves its volume: a Ray worker cancelled by force, say."""
    import docker.errors
    import requests.exceptions

    try:
        found = client.volumes.list(filters={"label": f"{LABEL_RUN}={run_id}"})
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        return 0
    return sum(_quietly(lambda v=volume: v.remove(force=True)) for volume in found)


def _quietly(action: Any) -> bool:
    """Cleanup that must not hide the real error: an engine that is gone leaves it to the next start."""
    import docker.errors
    import requests.exceptions

    try:
        action()
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        return False
    return True
