"""Which sandbox a night runs in, built from the settings: Docker (the default) or --sandbox local.

Docker's runtime and GPUs are checked against the engine before anything runs; the local
backend is announced as the weaker isolation it is.
"""

from __future__ import annotations

from typing import Any

from harness.config import Settings, parse_size
from harness.seams import Sandbox
from sandbox.hardening import Limits

LOCAL_IMAGE = "local"  # what config.json and the setup cache call the host's own Python


def limits_for(settings: Settings) -> Limits:
    sandbox = settings.sandbox
    gpus = sandbox.gpus
    return Limits(
        memory_bytes=parse_size(sandbox.memory),
        cpus=sandbox.cpus,
        pids=sandbox.pids,
        tmpfs_bytes=parse_size(sandbox.tmpfs),
        output_cap_bytes=parse_size(sandbox.output_cap),
        runtime=sandbox.runtime,
        gpus=() if gpus is None else ("all",) if gpus == "all" else tuple(gpus),
    )


def open_sandbox(settings: Settings, client: Any, image: str, run_id: str, say) -> Sandbox:
    """The night's sandbox; a runtime or GPUs the engine cannot provide stop it here."""
    limits = limits_for(settings)
    if settings.sandbox.backend == "local":
        from sandbox.local_sandbox import WARNING, LocalSandbox

        say(WARNING)
        return LocalSandbox(limits, run_id)
    from sandbox.docker_sandbox import DockerSandbox
    from sandbox.hardening import check_engine

    check_engine(client, limits, image)
    api_timeout = settings.sandbox.api_timeout
    return DockerSandbox(limits, run_id, client=client, api_timeout=api_timeout, say=say)


def isolation(settings: Settings) -> str:
    """One word for config.json and status: how strongly train.py is isolated."""
    return "weaker (--sandbox local)" if settings.sandbox.backend == "local" else "docker"


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
