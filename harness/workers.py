"""How many experiments run at once, the GPUs each one gets, and the limits they share.

Resolved once with the settings: `--workers` (or `[executor] workers`) defaults to the GPU
pool's slots when `sandbox.gpus_per_experiment` is set, else 1. On this machine's engine the
workers share its CPUs and memory: limits left at their defaults are divided between them, and
limits set by hand that cannot fit N at once are refused in one line. A Ray cluster's nodes
have their own sizes, so there the limits are what each experiment asks Ray for.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from dataclasses import dataclass

from harness.sizes import ByteSize

MIN_MEMORY = 256 * 2**20  # below this per container, N workers do not fit the machine
_MEMORY_SHARE = 0.8  # of the machine's memory that N workers' containers may use in all


@dataclass(frozen=True)
class Machine:
    cpus: int
    memory_bytes: int

    @staticmethod
    def this() -> Machine:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return Machine(os.cpu_count() or 1, int(pages))


@dataclass(frozen=True)
class WorkerPlan:
    """The resolved worker count, each container's share, and the GPU slots (None: no pool)."""

    workers: int
    cpus: float
    memory: ByteSize
    slots: tuple[tuple[str, ...], ...] | None
    note: str  # one line for `validate` and the start of the night


class PlanError(ValueError):
    """A worker count or GPU pool that cannot work; the message says what to change."""


def gpu_slots(
    gpus: str | list[str] | None, per_experiment: int | None
) -> tuple[tuple[str, ...], ...] | None:
    """The pool's slots: `gpus` cut into groups of `per_experiment` devices (None: no pool)."""
    if per_experiment is None:
        return None
    if gpus is None:
        raise PlanError("sandbox.gpus_per_experiment is set but sandbox.gpus is not; list the GPUs")
    devices = list_gpus() if gpus == "all" else list(gpus)
    if len(set(devices)) != len(devices):
        raise PlanError(f"sandbox.gpus lists a device twice: {devices}")
    slots = tuple(
        tuple(devices[i : i + per_experiment])
        for i in range(0, len(devices) - per_experiment + 1, per_experiment)
    )
    if not slots:
        raise PlanError(
            f"sandbox.gpus_per_experiment = {per_experiment} but sandbox.gpus has "
            f"{len(devices)} device(s); lower it or list more GPUs"
        )
    return slots


def list_gpus() -> list[str]:
    """The GPU indexes of this machine, from nvidia-smi; gpus = "all" in a pool needs them."""
    if shutil.which("nvidia-smi") is None:
        raise PlanError(
            'sandbox.gpus = "all" with gpus_per_experiment needs nvidia-smi to count the GPUs; '
            "list their ids instead, e.g. gpus = [0, 1, 2, 3]"
        )
    listed = subprocess.run(
        ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    indexes = [line.strip() for line in listed.stdout.splitlines() if line.strip()]
    if listed.returncode != 0 or not indexes:
        raise PlanError(
            'sandbox.gpus = "all": nvidia-smi found no GPU; list their ids, e.g. gpus = [0, 1]'
        )
    return indexes


def plan_workers(
    workers: int | None,
    slots: tuple[tuple[str, ...], ...] | None,
    cpus: float,
    memory: ByteSize,
    set_by_hand: frozenset[str],
    shared_machine: Machine | None,
) -> WorkerPlan:
    """N workers and each container's limits. `set_by_hand`: the sandbox keys the user wrote
    (those are kept, or refused when N cannot fit); `shared_machine`: the machine whose engine
    runs every container (None on a Ray cluster, whose nodes schedule by resources)."""
    count = workers or (len(slots) if slots else 1)
    if slots is not None and count > len(slots):
        raise PlanError(
            f"{count} workers but the GPU pool has {len(slots)} slot(s) of "
            f"{len(slots[0])} GPU(s); lower --workers or add GPUs to sandbox.gpus"
        )
    pool = f", each with its own GPU(s) of {len(slots)} slot(s)" if slots else ""
    if count == 1 or shared_machine is None:
        where = (
            f"{count} at once on a Ray cluster's nodes"
            if shared_machine is None
            else "1, one experiment at a time (--workers N for more)"
        )
        note = f"{where}{pool}: {cpus:g} CPUs and {memory} per container"
        return WorkerPlan(count, cpus, memory, slots, note)
    machine = shared_machine
    if "memory" in set_by_hand:
        if count * memory.bytes > machine.memory_bytes:
            raise PlanError(
                f"{count} workers x sandbox.memory {memory} is more than this machine's "
                f"{_gib(machine.memory_bytes)}; lower --workers or sandbox.memory"
            )
    else:
        share = int(_MEMORY_SHARE * machine.memory_bytes / count)
        if share < MIN_MEMORY:
            raise PlanError(
                f"{count} workers leave {_gib(share)} of memory per container on this machine "
                f"({_gib(machine.memory_bytes)}); lower --workers"
            )
        if share < memory.bytes:
            memory = ByteSize.parse(f"{share // 2**20}m")
    if "cpus" in set_by_hand:
        if cpus > machine.cpus:
            raise PlanError(
                f"sandbox.cpus = {cpus:g} is more than this machine's {machine.cpus} CPUs"
            )
    else:
        cpus = round(max(min(cpus, machine.cpus / count), 0.01), 2)
    note = (
        f"{count} workers at once{pool}: {cpus:g} CPUs and {memory} per container "
        f"(this machine's {machine.cpus} CPUs and {_gib(machine.memory_bytes)} shared; "
        "limits set by hand are kept)"
    )
    return WorkerPlan(count, cpus, memory, slots, note)


class DevicePool:
    """Hands each running experiment a slot of GPUs no other running one holds."""

    def __init__(self, slots: tuple[tuple[str, ...], ...] | None) -> None:
        self._free = list(slots or ())
        self._pooled = slots is not None
        self._lock = threading.Lock()

    def take(self) -> tuple[str, ...] | None:
        """A free slot (None without a pool: every container gets the sandbox's `gpus`)."""
        if not self._pooled:
            return None
        with self._lock:
            if not self._free:
                raise RuntimeError("no free GPU slot: more experiments started than slots")
            return self._free.pop(0)

    def give_back(self, devices: tuple[str, ...] | None) -> None:
        if devices is not None:
            with self._lock:
                self._free.append(devices)


def _gib(size: int) -> str:
    return f"{size / 2**30:.1f}g"
