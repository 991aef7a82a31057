"""The Docker sandbox: one fresh, locked-down container per step, always removed.

The deadline is enforced twice, outside the code that might ignore it: here, where the container
is killed when it passes, and inside, by enforcer.py as the container's PID 1 a few seconds later,
which nothing in the container can stop and which holds even when the harness is gone. Every
container is created with AutoRemove, so it goes away at its end whoever is left to see it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.errors import InfrastructureFault, OvernightError
from harness.seams import RunResult, RunSpec, RunStatus, Scratch
from sandbox import deadline, volumes
from sandbox.attached import Attached
from sandbox.deadline import ENFORCER, TIMEOUT, UNWRAPPED
from sandbox.hardening import Limits, check_engine, container_options
from sandbox.labels import LABEL, LABEL_RUN, owned, owner_alive


class SandboxError(OvernightError):
    """A fault of the engine or the image, not of the experiment."""


class EngineUnavailable(SandboxError, InfrastructureFault):
    """The engine is unreachable, restarting, or a call to it did not answer in time."""


class ImageMissing(SandboxError, InfrastructureFault):
    """The image went away in the middle of a night (someone removed it)."""


INNER_GRACE_S = deadline.GRACE_S


class DockerSandbox:
    """The Sandbox seam on a Docker engine; the client is made when first needed, and again after
    the engine went away."""

    def __init__(
        self,
        limits: Limits,
        run_id: str,
        client: Any = None,
        api_timeout: float = 60.0,
        say: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.limits = limits
        self.run_id = run_id
        self.api_timeout = api_timeout
        self.say = say
        self._client = client
        self._owned = False  # whether it made the client it holds (then `close` closes it)
        self._modes: dict[str, str] = {}
        self.keepers = volumes.VolumeKeepers(limits, run_id)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client, self._owned = connect(self.api_timeout), True
        return self._client

    def open(self) -> None:
        """Reach the engine now (EngineUnavailable while it does not answer)."""
        self.client  # noqa: B018 (the property connects)

    def prepare(self, image: str) -> None:
        """Remove the containers of harnesses that died, then check the runtime and GPUs."""
        remove_labelled(self.client)
        check_engine(self.client, self.limits, image)

    def remove_leftovers(self) -> int:
        """This run's containers, then its volumes (free once their keepers are gone)."""
        removed = remove_labelled(self.client, run_id=self.run_id)
        volumes.remove_run_volumes(self.client, self.run_id)
        return removed

    def close(self) -> None:
        """This run's leftovers removed; with the engine gone, the next night's `prepare` will."""
        with contextlib.suppress(InfrastructureFault):
            self.remove_leftovers()
        if self._owned:
            self._drop_client()

    def run(self, spec: RunSpec) -> RunResult:
        """Run one container to its end; engine faults become EngineUnavailable."""
        import docker.errors
        import requests.exceptions

        try:
            mode = self.deadline_mode(spec.image)
            return self._run(_with_inner_deadline(spec, mode), mode)[0]
        except (requests.exceptions.RequestException, docker.errors.APIError) as err:
            self._drop_client()  # reconnect on the next call, the engine may have restarted
            raise EngineUnavailable(f"the Docker engine did not answer: {err}") from err

    def _drop_client(self) -> None:
        """Forget the client and close its pooled connections (else each reconnect leaks them)."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def deadline_mode(self, image: str) -> str:
        """How containers of `image` get their inner deadline, asked once per image: the enforcer
        as PID 1, else (no python3 to run it) `timeout -s KILL` under Docker's init, else none."""
        import docker.errors

        mode = self._modes.get(image)
        if mode is None:
            probe = RunSpec(image, deadline.keeper(0), [], {}, timeout_s=30, purpose="probe")
            try:
                status = self._run(probe, ENFORCER)[1]
            except docker.errors.APIError as err:
                if err.is_server_error():
                    raise
                status = None  # no python3: the engine could not start the command
            mode = ENFORCER
            if status is None:
                fallback = RunSpec(image, ["timeout", "5", "true"], [], {}, 30, purpose="probe")
                works = self._run(fallback, TIMEOUT)[0].status is RunStatus.OK
                mode = TIMEOUT if works else UNWRAPPED
                self.say(
                    deadline.NO_ENFORCER.format(
                        image=image, timeout=" and `timeout -s KILL`" if works else ""
                    )
                )
            self._modes[image] = mode
        return mode

    def scratch(
        self, size_bytes: int, lifetime_s: float = volumes.DEFAULT_LIFETIME_S
    ) -> contextlib.AbstractContextManager[Scratch]:
        """A tmpfs volume of `size_bytes`, kept mounted between the runs of one experiment
        (at most `lifetime_s`, then its keeper ends even if the harness is gone)."""
        return self.keepers.volume(self.client, size_bytes, lifetime_s)

    def labels(self, purpose: str) -> dict[str, str]:
        return owned(self.run_id, purpose)

    def _run(self, spec: RunSpec, mode: str) -> tuple[RunResult, deadline.Status | None]:
        container = self._create(spec, mode)
        try:
            return self._wait(container, spec, mode)
        finally:
            _remove(container)

    def _create(self, spec: RunSpec, mode: str) -> Any:
        """A locked-down container for the spec; every option comes from `container_options`."""
        import docker.errors

        try:
            self.keepers.ensure(self.client, spec, mode)
            options = container_options(
                spec, self.limits, self.labels(spec.purpose), enforced=mode == ENFORCER
            )
            return self.client.containers.create(**options)
        except docker.errors.ImageNotFound as err:
            raise ImageMissing(
                f"image {spec.image!r} is not on this machine: run `overnight image build` "
                "or set image in the task's overnight.toml to one you have"
            ) from err
        except docker.errors.APIError as err:
            if err.is_server_error():
                raise
            raise SandboxError(f"the Docker engine refused the container: {err}") from err

    def _wait(self, container: Any, spec: RunSpec, mode: str) -> Any:
        """Start the container and wait for its end (or kill it at the deadline): its result,
        and the enforcer's status where the enforcer ran it."""
        wait_for = spec.timeout_s + INNER_GRACE_S + 2 * self.api_timeout
        attached = Attached(self.client, container, self.limits.output_cap_bytes, wait_for)
        try:
            container.start()
            started = time.monotonic()
            exit_code, peak, timed_out = self._watch(container, attached, started + spec.timeout_s)
            wall = time.monotonic() - started
            attached.finish(timeout=5)
        finally:
            attached.close()
        status = deadline.parse(bytes(attached.stderr)) if mode == ENFORCER else None
        output = attached.stdout if mode == ENFORCER else attached.merged
        if status is not None:
            peak = max(peak, status.peak_bytes)
        result = RunResult(
            status=self._classify(exit_code, timed_out, peak, status),
            exit_code=None if timed_out else exit_code,
            wall_s=round(wall, 3),
            output_tail=bytes(output[-self.limits.output_cap_bytes :]).decode("utf-8", "replace"),
            peak_memory_bytes=peak,
        )
        return result, status

    def _watch(self, container: Any, attached: Attached, deadline_at: float) -> Any:
        """Poll until the container is gone: (exit code, peak memory seen, whether it was
        killed at the deadline)."""
        peak, interval = 0, 0.1  # short at first, so the peak memory of a short run is seen
        while True:
            peak = max(peak, _cgroup_peak(container.id))
            remaining = deadline_at - time.monotonic()
            if remaining <= 0:
                _kill(container)
                return attached.exit_code(timeout=self.api_timeout), peak, True
            exit_code = attached.exit_code(timeout=min(remaining, interval))
            if exit_code is not None:
                return exit_code, peak, False
            interval = min(interval * 2, 0.5)

    def _classify(
        self, exit_code: int | None, timed_out: bool, peak: int, status: deadline.Status | None
    ) -> RunStatus:
        if timed_out or (status is not None and status.reason == "deadline" and exit_code != 0):
            return RunStatus.TIMEOUT
        if exit_code == 0:
            return RunStatus.OK
        if status is not None and status.oom_kills > 0:
            return RunStatus.OOM
        if exit_code == 137 and peak >= 0.95 * self.limits.memory_bytes:
            return RunStatus.OOM  # the enforcer itself was killed, or there was none
        return RunStatus.CRASH


def _with_inner_deadline(spec: RunSpec, mode: str) -> RunSpec:
    """The command under its in-container deadline, which trails the harness's by a grace."""
    seconds = spec.timeout_s + INNER_GRACE_S
    if mode == ENFORCER:
        return replace(spec, command=deadline.enforced(spec.command, seconds))
    if mode == TIMEOUT:
        return replace(spec, command=deadline.with_timeout(spec.command, seconds))
    return spec


def connect(api_timeout: float = 60.0) -> Any:
    """A Docker client whose every call times out, or EngineUnavailable saying what to do."""
    import docker
    import docker.errors
    import requests.exceptions

    try:
        client = docker.from_env(timeout=api_timeout)
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as err:
        raise EngineUnavailable(
            f"cannot reach the Docker engine ({err}): start it, or check DOCKER_HOST"
        ) from err
    return client


def remove_labelled(client: Any, run_id: str | None = None) -> int:
    """Remove containers labelled by overnight (of one run, or whose owning process is gone).

    Best effort: with the engine unreachable it removes nothing and says so by returning 0.
    """
    import docker.errors
    import requests.exceptions

    filters = {"label": [LABEL]} if run_id is None else {"label": [f"{LABEL_RUN}={run_id}"]}
    try:
        containers = client.containers.list(all=True, filters=filters)
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        return 0
    removed = 0
    for container in containers:
        if run_id is None and owner_alive(container.labels):
            continue
        _remove(container)
        removed += 1
    return removed


def _kill(container: Any) -> None:
    import docker.errors

    # It may have exited between the deadline and the kill.
    with contextlib.suppress(docker.errors.APIError):
        container.kill()


def _remove(container: Any) -> None:
    """Remove a container; if the engine is gone, the next start's cleanup will."""
    import docker.errors
    import requests.exceptions

    with contextlib.suppress(docker.errors.NotFound, requests.exceptions.RequestException):
        container.remove(force=True)


_CGROUP_PEAK_FILES = (
    "/sys/fs/cgroup/memory/docker/{id}/memory.max_usage_in_bytes",
    "/sys/fs/cgroup/memory/system.slice/docker-{id}.scope/memory.max_usage_in_bytes",
    "/sys/fs/cgroup/system.slice/docker-{id}.scope/memory.peak",
    "/sys/fs/cgroup/docker/{id}/memory.peak",
)


def _cgroup_peak(container_id: str) -> int:
    """The container's peak memory from the host's cgroup files, 0 where they are not readable."""
    for pattern in _CGROUP_PEAK_FILES:
        path = Path(pattern.format(id=container_id))
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            continue
    return 0
