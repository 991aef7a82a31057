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
    return DockerSandbox(limits, run_id, client=client, api_timeout=settings.sandbox.api_timeout)


def isolation(settings: Settings) -> str:
    """One word for config.json and status: how strongly train.py is isolated."""
    return "weaker (--sandbox local)" if settings.sandbox.backend == "local" else "docker"
