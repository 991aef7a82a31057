"""Which sandbox a night runs in, built from the settings: Docker (the default) or --sandbox local.

The one module above sandbox/ that names the Docker sandbox: the rest of the harness holds a
`Sandbox` (harness/seams.py) and asks here for what depends on the engine (the image of a task,
doctor's engine checks). Docker's runtime and GPUs are checked against the engine before anything
runs (`Sandbox.prepare`); the local backend is announced as the weaker isolation it is.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from harness.config import Settings
from harness.seams import Sandbox
from sandbox.hardening import Limits

if TYPE_CHECKING:
    from harness.task import Task

Say = Callable[[str], None]

LOCAL_IMAGE = "local"  # what config.json and the setup cache call the host's own Python


def limits_for(settings: Settings) -> Limits:
    sandbox = settings.sandbox
    gpus = sandbox.gpus
    return Limits(
        memory_bytes=sandbox.memory.bytes,
        cpus=sandbox.cpus,
        pids=sandbox.pids,
        tmpfs_bytes=sandbox.tmpfs.bytes,
        output_cap_bytes=sandbox.output_cap.bytes,
        runtime=sandbox.runtime,
        gpus=() if gpus is None else ("all",) if gpus == "all" else tuple(gpus),
    )


def make_sandbox(settings: Settings, run_id: str, say: Say) -> Sandbox:
    """The night's sandbox, not yet opened (nothing is reached until its `open`)."""
    limits = limits_for(settings)
    if settings.sandbox.backend == "local":
        from sandbox.local_sandbox import LocalSandbox

        return LocalSandbox(limits, run_id, say=say)
    from sandbox.docker_sandbox import DockerSandbox

    api_timeout = settings.sandbox.api_timeout
    return DockerSandbox(limits, run_id, api_timeout=api_timeout, say=say)


def image_for(sandbox: Sandbox, settings: Settings, task: Task, say: Say) -> str:
    """The image the night's runs use, built if it must be, from an opened sandbox; TaskError
    when it lacks a module the task needs."""
    if settings.sandbox.backend == "local":
        return LOCAL_IMAGE
    from harness.task_images import night_image

    return night_image(_client_of(sandbox), settings, task, say)


def docker_client(api_timeout: float = 60.0) -> Any:
    """A Docker client for the image commands, or EngineUnavailable saying what to do."""
    from sandbox.docker_sandbox import connect

    return connect(api_timeout)


def probe_sandbox(settings: Settings, client: Any) -> Sandbox:
    """A Docker sandbox that only looks inside images: their runtime and GPUs do not matter."""
    from sandbox.docker_sandbox import DockerSandbox

    limits = replace(limits_for(settings), runtime=None, gpus=())
    return DockerSandbox(limits, f"probe-{os.getpid()}", client, settings.sandbox.api_timeout)


def _client_of(sandbox: Sandbox) -> Any:
    from sandbox.docker_sandbox import DockerSandbox

    assert isinstance(sandbox, DockerSandbox), sandbox
    return sandbox.client


def isolation(settings: Settings) -> str:
    """A few words for config.json and status: how strongly train.py is isolated, and where."""
    base = "weaker (--sandbox local)" if settings.sandbox.backend == "local" else "docker"
    return f"{base}, on Ray nodes" if settings.executor.kind == "ray" else base


def hardening_lines(settings: Any, client: Any, problems: list[str]) -> list[str]:
    """`validate`'s line per isolation item a run would have, from the options runs use; a
    runtime the engine lacks is a problem. `client`: the engine's, or None when unreachable."""
    limits = limits_for(settings)
    output = settings.sandbox.output_dir_size.bytes
    if settings.sandbox.backend == "local":
        from sandbox.local_sandbox import local_report

        return [f"isolation: {line}" for line in local_report(limits, output)]
    from sandbox.hardening import hardening_report

    info = None
    if client is not None:
        info = client.info()
        runtimes = sorted((info.get("Runtimes") or {}).keys())
        if limits.runtime and limits.runtime not in runtimes:
            problems.append(
                f"sandbox.runtime = {limits.runtime!r} is not installed in the Docker engine "
                f"(it has: {', '.join(runtimes)}); install it or remove sandbox.runtime"
            )
    network = settings.sandbox.setup_network
    networks = (network, network if settings.sandbox.train_network else "none")
    lines = [f"hardening: {line}" for line in hardening_report(limits, output, info, networks)]
    if limits.gpus:
        lines.append("hardening: (GPU support is checked when a run starts)")
    return lines


def engine_checks(client: Any, task_dir: Any) -> list[tuple[str | None, str | None]]:
    """`overnight doctor`'s hardening lines, as (ok, problem) pairs: the engine's seccomp, and the
    task's runtime, GPUs and backend where a task is given."""
    from harness.config import resolve_settings
    from harness.errors import OvernightError
    from harness.task import load_task

    info = client.info()
    checks: list[tuple[str | None, str | None]] = []
    if "name=seccomp" in " ".join(info.get("SecurityOptions") or []):
        checks.append(("hardening: the engine applies its default seccomp profile", None))
    else:
        checks.append((None, "the Docker engine reports no seccomp: enable it in dockerd"))
    runtimes = sorted((info.get("Runtimes") or {}).keys())
    try:
        settings = resolve_settings(load_task(task_dir)) if task_dir is not None else None
    except OvernightError:
        settings = None  # the settings check reports it
    runtime = settings.sandbox.runtime if settings else None
    if runtime and runtime not in runtimes:
        checks.append((None, f"sandbox.runtime = {runtime!r} is not installed in the engine"))
    else:
        installed = "installed" if "runsc" in runtimes else "not installed"
        checks.append(
            (f"hardening: runtime {runtime or 'runc'} (gVisor's runsc {installed})", None)
        )
    if settings and settings.sandbox.gpus:
        checks.append(("hardening: GPUs are requested; the first run checks the engine", None))
    if settings and settings.sandbox.train_network:
        checks.append(
            (
                f"hardening: training joins network {settings.sandbox.setup_network!r} "
                "(sandbox.train_network = true): WEAKER ISOLATION",
                None,
            )
        )
    if settings and settings.sandbox.backend == "local":
        checks.append(("hardening: --sandbox local: WEAKER ISOLATION (no Docker)", None))
    checks.append(("hardening: `overnight validate TASK` lists every item", None))
    return checks
