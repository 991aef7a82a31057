"""The Docker sandbox: one fresh, locked-down container per step, always removed.

The deadline is enforced here, outside the code that might ignore it: when it passes, the
container is killed, whatever runs inside.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import replace
from pathlib import Path

from harness.errors import InfrastructureFault, OvernightError
from harness.seams import RunResult, RunSpec, RunStatus, Scratch
from sandbox import volumes
from sandbox.hardening import Limits, container_options

LABEL = "org.overnight"
LABEL_RUN = "org.overnight.run"
LABEL_PURPOSE = "org.overnight.purpose"
LABEL_PID = "org.overnight.pid"


class SandboxError(OvernightError):
    """A fault of the engine or the image, not of the experiment."""


class EngineUnavailable(SandboxError, InfrastructureFault):
    """The engine is unreachable, restarting, or a call to it did not answer in time."""


class ImageMissing(SandboxError, InfrastructureFault):
    """The image went away in the middle of a night (someone removed it)."""


INNER_GRACE_S = 5  # the in-container deadline trails the harness's own by this much


class DockerSandbox:
    def __init__(self, limits: Limits, run_id: str, client=None, api_timeout: float = 60.0) -> None:
        self.limits = limits
        self.run_id = run_id
        self.api_timeout = api_timeout
        self._client = client
        self._inner_deadline: dict[str, bool] = {}

    @property
    def client(self):
        if self._client is None:
            self._client = connect(self.api_timeout)
        return self._client

    def run(self, spec: RunSpec) -> RunResult:
        """Run one container to its end; engine faults become EngineUnavailable."""
        import docker.errors
        import requests.exceptions

        try:
            spec = self._with_inner_deadline(spec)
            container = self._create(spec)
            try:
                return self._wait(container, spec)
            finally:
                _remove(container)
        except (requests.exceptions.RequestException, docker.errors.APIError) as err:
            self._drop_client()  # reconnect on the next call, the engine may have restarted
            raise EngineUnavailable(f"the Docker engine did not answer: {err}") from err

    def _drop_client(self) -> None:
        """Forget the client and close its pooled connections (else each reconnect leaks them)."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def _with_inner_deadline(self, spec: RunSpec) -> RunSpec:
        """Wrap the command in `timeout`, so the container dies on time even if the harness
        itself is killed. Images without a `timeout` program run unwrapped."""
        supported = self._inner_deadline.get(spec.image)
        if supported is None:
            probe = RunSpec(
                spec.image, ["timeout", "5", "true"], [], {}, timeout_s=30, purpose="probe"
            )
            supported = self._wait_for(probe).status is RunStatus.OK
            self._inner_deadline[spec.image] = supported
        if not supported:
            return spec
        seconds = str(int(spec.timeout_s) + INNER_GRACE_S)
        return replace(spec, command=["timeout", "-s", "KILL", seconds, *spec.command])

    def _wait_for(self, spec: RunSpec) -> RunResult:
        container = self._create(spec)
        try:
            return self._wait(container, spec)
        finally:
            _remove(container)

    def scratch(self, size_bytes: int) -> contextlib.AbstractContextManager[Scratch]:
        """A tmpfs volume of `size_bytes`, kept mounted between the runs of one experiment."""
        return volumes.tmpfs_volume(self, size_bytes)

    def _create(self, spec: RunSpec):
        """A locked-down container for the spec; every option comes from `container_options`."""
        import docker.errors

        labels = {
            LABEL: "1",
            LABEL_RUN: self.run_id,
            LABEL_PURPOSE: spec.purpose,
            LABEL_PID: str(os.getpid()),
        }
        try:
            volumes.ensure_keepers(self, spec)
            return self.client.containers.create(**container_options(spec, self.limits, labels))
        except docker.errors.ImageNotFound as err:
            raise ImageMissing(
                f"image {spec.image!r} is not on this machine: run `overnight image build` "
                "or set image in the task's overnight.toml to one you have"
            ) from err
        except docker.errors.APIError as err:
            if err.is_server_error():
                raise
            raise SandboxError(f"the Docker engine refused the container: {err}") from err

    def _wait(self, container, spec: RunSpec) -> RunResult:
        import requests.exceptions

        container.start()
        started = time.monotonic()
        deadline = started + spec.timeout_s
        peak = 0
        exit_code: int | None = None
        timed_out = False
        interval = 0.1  # short at first, so the peak memory of a short run is seen
        while True:
            peak = max(peak, _cgroup_peak(container.id))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                _kill(container)
                break
            try:
                exit_code = int(container.wait(timeout=min(remaining, interval))["StatusCode"])
                break
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as err:
                if not _is_timeout(err):
                    raise
                interval = min(interval * 2, 0.5)
        wall = time.monotonic() - started
        container.reload()
        state = container.attrs.get("State", {})
        if timed_out:
            status, exit_code = RunStatus.TIMEOUT, None
        elif state.get("OOMKilled") or (
            exit_code == 137 and peak >= 0.95 * self.limits.memory_bytes
        ):
            status = RunStatus.OOM
        elif exit_code == 0:
            status = RunStatus.OK
        else:
            status = RunStatus.CRASH
        return RunResult(
            status=status,
            exit_code=exit_code,
            wall_s=round(wall, 3),
            output_tail=self._output_tail(container),
            peak_memory_bytes=peak,
        )

    def _output_tail(self, container) -> str:
        raw = container.logs(stdout=True, stderr=True)
        cap = self.limits.output_cap_bytes
        return raw[-cap:].decode("utf-8", errors="replace")


def connect(api_timeout: float = 60.0):
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


def _is_timeout(err: Exception) -> bool:
    """A poll that ran out of time (reading, or connecting on a loaded machine), not a dead engine.

    docker-py reports a wait() that timed out as a ConnectionError wrapping urllib3's timeout.
    """
    import requests.exceptions
    import urllib3.exceptions

    if isinstance(err, requests.exceptions.Timeout):
        return True
    for arg in err.args:
        reason = getattr(arg, "reason", arg)  # MaxRetryError wraps the real cause
        if isinstance(arg, urllib3.exceptions.TimeoutError) or isinstance(
            reason, urllib3.exceptions.TimeoutError
        ):
            return True
    return False


def remove_leftovers(client, run_id: str | None = None) -> int:
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
        owner = container.labels.get(LABEL_PID, "")
        if run_id is None and owner.isdigit() and _alive(int(owner)):
            continue
        _remove(container)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill(container) -> None:
    import docker.errors

    # It may have exited between the deadline and the kill.
    with contextlib.suppress(docker.errors.APIError):
        container.kill()


def _remove(container) -> None:
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
