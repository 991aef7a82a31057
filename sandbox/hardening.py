"""How every container is locked down, decided in one place, and the report of it.

`container_options` builds the engine's options for one run; `DockerSandbox._create` passes them
as they are, and `hardening_report` reads the very same options, so what `overnight validate`
shows is what runs. Every item is on for every run; only the runtime and GPUs are chosen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.errors import OvernightError
from harness.seams import Mount, RunSpec, ScratchMount, Tmpfs
from sandbox.labels import LABEL, LABEL_PURPOSE
from sandbox.users import container_user

NOFILE = 4096
_CAPS_TO_SWITCH_USERS = ["SETUID", "SETGID"]


class HardeningError(OvernightError):
    """The configured runtime or GPUs are not available on this engine."""


@dataclass(frozen=True)
class Limits:
    """The limits and choices that shape every container (or local process) of a night."""

    memory_bytes: int
    cpus: float
    pids: int
    tmpfs_bytes: int
    output_cap_bytes: int
    runtime: str | None = None  # e.g. "runsc" (gVisor); None: the engine's default
    gpus: tuple[str, ...] = ()  # ("all",) or device ids


def container_options(
    spec: RunSpec, limits: Limits, labels: dict[str, str], enforced: bool = True
) -> dict[str, Any]:
    """The keyword arguments of `containers.create` for one run. `enforced`: the command starts
    with overnight's enforcer (deadline.py), which must be PID 1, so Docker's init is off; else
    Docker's init (tini) reaps the children."""
    from docker.types import LogConfig, Ulimit

    half_cap = max(limits.output_cap_bytes // 2, 4096)
    ulimits = [Ulimit(name="nofile", soft=NOFILE, hard=NOFILE), Ulimit(name="core", soft=0, hard=0)]
    writable_scratch = [
        m.scratch.size_bytes for m in spec.mounts if isinstance(m, ScratchMount) and not m.read_only
    ]
    if writable_scratch:  # no single file may outgrow the output area (a sparse file, say)
        biggest = max(writable_scratch)
        ulimits.append(Ulimit(name="fsize", soft=biggest, hard=biggest))
    binds = [m for m in spec.mounts if not isinstance(m, Tmpfs)]
    uid, gid = container_user().split(":")
    tmpfs = {"/tmp": f"rw,nosuid,nodev,size={limits.tmpfs_bytes}"}
    for m in spec.mounts:
        if isinstance(m, Tmpfs):
            tmpfs[m.container] = (
                f"rw,nosuid,nodev,size={m.size_bytes},mode=0755,uid={uid},gid={gid}"
            )
    options: dict[str, Any] = {
        "image": spec.image,
        "command": spec.command,
        "labels": labels,
        "environment": dict(spec.env),  # only what the spec names: never the host's variables
        "working_dir": spec.workdir,
        "mounts": [_mount(m) for m in binds],
        "network_mode": spec.network,
        "read_only": True,
        "tmpfs": tmpfs,
        "shm_size": limits.tmpfs_bytes,
        "ipc_mode": "private",
        "user": "0:0" if spec.user_switching else container_user(),
        "cap_drop": ["ALL"],
        "cap_add": list(_CAPS_TO_SWITCH_USERS) if spec.user_switching else None,
        "security_opt": ["no-new-privileges"],
        "privileged": False,
        "mem_limit": limits.memory_bytes,
        "memswap_limit": limits.memory_bytes,
        "nano_cpus": int(limits.cpus * 1e9),
        "pids_limit": limits.pids,
        "ulimits": ulimits,
        "init": not enforced,
        "auto_remove": True,  # gone at its end, even with the harness dead (attached.py)
        # Docker keeps at most two files of half the cap: the tail survives a flood.
        "log_config": LogConfig(
            type="json-file", config={"max-size": str(half_cap), "max-file": "2"}
        ),
        "detach": True,
    }
    if limits.runtime:
        options["runtime"] = limits.runtime
    gpus = limits.gpus if spec.devices is None else spec.devices
    if gpus:
        options["device_requests"] = [_gpu_request(gpus)]
    return options


def _mount(mount: Mount | ScratchMount) -> Any:
    """A bind mount of a host path, or a scratch volume (never seeded from the image: nocopy).
    Given as a list, not a dict keyed by source: one host file may be mounted at two places."""
    from docker.types import Mount as DockerMount

    if isinstance(mount, ScratchMount):
        return DockerMount(
            mount.container,
            mount.scratch.name,
            type="volume",
            read_only=mount.read_only,
            no_copy=True,
        )
    return DockerMount(mount.container, str(mount.host), type="bind", read_only=mount.read_only)


def _gpu_request(gpus: tuple[str, ...]) -> Any:
    from docker.types import DeviceRequest

    if gpus == ("all",):
        return DeviceRequest(count=-1, capabilities=[["gpu"]])
    return DeviceRequest(device_ids=list(gpus), capabilities=[["gpu"]])


def check_engine(client: Any, limits: Limits, image: str) -> None:
    """Refuse, in one line, a runtime the engine lacks or GPUs it cannot hand out."""
    if limits.runtime:
        runtimes = sorted((client.info().get("Runtimes") or {}).keys())
        if limits.runtime not in runtimes:
            raise HardeningError(
                f"overnight.toml: sandbox.runtime = {limits.runtime!r} is not installed in the "
                f"Docker engine (it has: {', '.join(runtimes) or 'none'}); install it (gVisor: "
                "`runsc install`, then restart dockerd) or remove sandbox.runtime"
            )
    if limits.gpus:
        _probe_gpus(client, limits, image)


def _probe_gpus(client: Any, limits: Limits, image: str) -> None:
    """Start one tiny container with the GPU request: the engine says only at start if it can."""
    import docker.errors

    spec = RunSpec(image=image, command=["true"], mounts=[], env={}, timeout_s=30, purpose="probe")
    options = container_options(spec, limits, {LABEL: "1", LABEL_PURPOSE: "probe"}, False)
    options["auto_remove"] = False  # waited for below, then removed
    container = client.containers.create(**options)
    try:
        container.start()
        container.wait(timeout=30)
    except docker.errors.APIError as err:
        raise HardeningError(
            f"overnight.toml: sandbox.gpus = {list(limits.gpus)} but the Docker engine cannot hand "
            f"out GPUs ({err.explanation or err}); install the NVIDIA Container Toolkit and "
            "restart dockerd, or remove sandbox.gpus"
        ) from err
    finally:
        container.remove(force=True)


def hardening_report(
    limits: Limits,
    output_dir_bytes: int,
    engine_info: dict[str, Any] | None = None,
    networks: tuple[str, str] = ("none", "none"),
) -> list[str]:
    """One line per hardening item of a training run, read from the options that are used."""
    from harness.seams import Scratch

    scratch = ScratchMount(Scratch("output", output_dir_bytes), "/overnight/output", False)
    setup_network, train_network = networks
    spec = RunSpec(
        "image", ["python3", "train.py"], [scratch], {}, 1, purpose="train", network=train_network
    )
    o = container_options(spec, limits, {})
    seccomp = "name=seccomp" in " ".join((engine_info or {}).get("SecurityOptions") or [])
    caps = "all dropped" if o["cap_drop"] == ["ALL"] and not o["cap_add"] else "SOME KEPT"
    fsize = next((u["Hard"] for u in o["ulimits"] if u["Name"] == "fsize"), None)
    return [
        _network_line(o["network_mode"], setup_network),
        f"root filesystem: {'read-only' if o['read_only'] else 'WRITABLE'}",
        f"/tmp: tmpfs of {_size(limits.tmpfs_bytes)}; /dev/shm: {_size(o['shm_size'])}",
        f"output directory: a tmpfs volume of {_size(output_dir_bytes)} per experiment, "
        "read-only to the evaluator, removed afterwards",
        f"user: {o['user']} (non-root); call_train workers: another uid without private data",
        f"capabilities: {caps}",
        f"no-new-privileges: {'on' if 'no-new-privileges' in o['security_opt'] else 'OFF'}",
        "seccomp: the engine's default profile"
        + ("" if engine_info is None or seccomp else " (NOT REPORTED BY THE ENGINE)"),
        f"privileged: {'never' if not o['privileged'] else 'YES'}",
        f"memory: {_size(o['mem_limit'])}, swap included ({_size(o['memswap_limit'])})",
        f"processes: at most {o['pids_limit']}; cpus: {o['nano_cpus'] / 1e9:g}",
        f"files: at most {NOFILE} open, none larger than the output directory ({fsize} bytes)",
        "PID 1: overnight's deadline enforcer (reaps every process, kills them all at the "
        "deadline; cannot be stopped, signalled or traced from inside)"
        if not o["init"]
        else "PID 1: Docker's init (NO ENFORCER: the image has no python3)",
        f"containers removed at their end: {'yes, by the engine' if o['auto_remove'] else 'NO'}",
        f"container logs: json-file capped at 2 x {o['log_config'].config['max-size']} bytes; "
        f"output tail kept: {_size(limits.output_cap_bytes)}",
        "host: no Docker socket, no host paths beyond the mounts, no host environment variables",
        f"runtime: {limits.runtime or 'the engine default (runc)'}",
        f"gpus: {', '.join(limits.gpus) if limits.gpus else 'none'}",
    ]


def _network_line(train: str, setup: str) -> str:
    setup_part = f"setup (python prepare.py): {setup}"
    if train == "none":
        return f"network: none for training and evaluation (loopback only); {setup_part}"
    return (
        f"network: WEAKER ISOLATION: training on {train!r} (sandbox.train_network = true: it "
        f"could send out anything it can read); evaluation none; {setup_part}"
    )


def _size(n: int) -> str:
    for unit, factor in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    return f"{n} bytes"
