"""What does the harness cost per experiment, next to a bare `docker run`?

Runs a task whose train.py does nothing through the real harness (`run_night`, replay agent,
Docker sandbox, git worktree, ledger) and times a bare `docker run --rm IMAGE true` side by side.

What is measured, per mode (protected: train + evaluate containers; inline: train only):
  * warm-up: one night with 0 experiments on a throwaway tag, so `python prepare.py` (cached per
    task folder) and first-use costs are paid before anything is timed;
  * t_0: the wall time of `run_night` with --max-experiments 0 on a fresh tag (setup cached,
    worktree, baseline);
  * t_N: the same with --max-experiments N on another fresh tag;
  * harness s/experiment = (t_N - t_0) / N: everything one more experiment costs (proposal, git
    commit and diff, the containers, the ledger, the reset of the branch).
Cross-checks from the ledger: the gaps between consecutive `decision` events in events.jsonl
(mean and median), and the in-container wall time the sandbox recorded (`seconds` column).

What the hardening costs, against the same bare `docker run --rm IMAGE true`:
  * hardened docker run: the same CLI command with every flag our sandbox sets (built from
    `container_options`, the options every run uses), so the ratio is the engine's cost of the
    hardening alone;
  * sandbox.run: one container through our DockerSandbox (create, start, wait, logs, remove);
  * sandbox.run + output volume: the same with the experiment's tmpfs output volume and its
    keeper container (created and removed each time, as each experiment does).

Usage: .venv/bin/python bench/overhead.py [--experiments N] [--skip-inline]
Nothing is asserted; it prints a table. The temporary task folders are removed afterwards.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.config import SandboxConfig
from harness.live import View
from harness.night import NightSummary, RunOptions, run_night
from harness.overrides import Overrides
from harness.seams import RunSpec, ScratchMount
from sandbox import deadline
from sandbox.docker_sandbox import DockerSandbox, EngineUnavailable
from sandbox.hardening import Limits, container_options
from sandbox.image import DEFAULT_IMAGE
from sandbox.labels import LABEL, LABEL_PID

PROGRAM = "# Overhead benchmark\n\ntrain.py does nothing; the metric is a constant.\n"

PREPARE_PROTECTED = '''"""Benchmark task: no data, a constant score from a protected evaluator."""

METRIC = "score"
DIRECTION = "maximize"
TIME_BUDGET = 10


def evaluate(output_dir):
    return 1.0


if __name__ == "__main__":
    print("nothing to prepare")
'''

PREPARE_INLINE = '''"""Benchmark task: no data, no evaluator; train.py prints the score itself."""

METRIC = "score"
DIRECTION = "maximize"
TIME_BUDGET = 10

if __name__ == "__main__":
    print("nothing to prepare")
'''


@dataclass(frozen=True)
class Mode:
    name: str
    prepare: str
    body: str  # train.py after the first line
    containers: int  # per experiment


# Containers per experiment: train (+ evaluate), and the keeper of the output volume.
PROTECTED = Mode("protected", PREPARE_PROTECTED, "pass\n", 3)
INLINE = Mode("inline", PREPARE_INLINE, 'print("score: 1.0")\n', 2)


@dataclass
class HarnessResult:
    mode: Mode
    t_zero: float
    t_n: float
    experiments: int
    gaps: list[float]  # seconds between consecutive decisions, experiments 1..N
    in_container: list[float]  # the ledger's `seconds` (train + evaluate wall time)
    statuses: list[str]
    stop_reason: str

    @property
    def per_experiment(self) -> float:
        return (self.t_n - self.t_zero) / self.experiments


def make_task(parent: Path, mode: Mode, experiments: int) -> tuple[Path, Path]:
    """A task folder (not in any repository, so the harness creates one) and its replay script."""
    task = parent / f"task-{mode.name}"
    task.mkdir()
    (task / "program.md").write_text(PROGRAM)
    (task / "prepare.py").write_text(mode.prepare)
    (task / "train.py").write_text(mode.body)
    script = parent / f"script-{mode.name}.jsonl"
    with open(script, "w") as handle:
        for i in range(1, experiments + 1):
            call = {"command": "write", "content": f"# experiment {i}\n{mode.body}"}
            handle.write(json.dumps({"description": f"experiment {i}", "calls": [call]}) + "\n")
    return task, script


def night(task: Path, script: Path, tag: str, experiments: int) -> tuple[float, NightSummary]:
    view = View(stream=io.StringIO(), live=False)
    options = RunOptions(
        task_dir=task,
        tag=tag,
        overrides=Overrides(provider="replay", script=script),
        max_experiments=experiments,
    )
    started = time.perf_counter()
    try:
        summary = run_night(options, view)
    finally:
        view.close()
    return time.perf_counter() - started, summary


def decision_gaps(run_dir: Path) -> list[float]:
    stamps: dict[int, float] = {}
    for line in (run_dir / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event.get("event") == "decision":
            stamps[int(event["experiment"])] = float(event["ts"])
    numbers = sorted(stamps)
    return [stamps[b] - stamps[a] for a, b in itertools.pairwise(numbers)]


def measure_harness(parent: Path, mode: Mode, experiments: int) -> HarnessResult:
    task, script = make_task(parent, mode, experiments)
    tag = f"bench-{os.getpid()}"
    warm, _ = night(task, script, f"{tag}-warm", 0)
    print(f"  {mode.name}: warm-up (setup + baseline) {warm:.2f}s", flush=True)
    t_zero, _ = night(task, script, f"{tag}-zero", 0)
    print(f"  {mode.name}: 0 experiments (baseline only) {t_zero:.2f}s", flush=True)
    t_n, summary = night(task, script, f"{tag}-n", experiments)
    print(
        f"  {mode.name}: {experiments} experiments {t_n:.2f}s ({summary.stop_reason})", flush=True
    )
    rows = [r for r in summary.rows if r.experiment > 0]
    return HarnessResult(
        mode=mode,
        t_zero=t_zero,
        t_n=t_n,
        experiments=experiments,
        gaps=decision_gaps(summary.run_dir),
        in_container=[r.seconds for r in rows],
        statuses=[r.status.value for r in rows],
        stop_reason=summary.stop_reason,
    )


def bare_docker(command: list[str], times: int, flags: list[str] | None = None) -> list[float]:
    walls = []
    for _ in range(times):
        started = time.perf_counter()
        subprocess.run(
            ["docker", "run", "--rm", *(flags or []), DEFAULT_IMAGE, *command],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,  # the enforcer's status line
        )
        walls.append(time.perf_counter() - started)
    return walls


def default_limits() -> Limits:
    config = SandboxConfig()
    return Limits(
        memory_bytes=config.memory.bytes,
        cpus=config.cpus,
        pids=config.pids,
        tmpfs_bytes=config.tmpfs.bytes,
        output_cap_bytes=config.output_cap.bytes,
    )


def hardened_flags(enforced: bool = False) -> list[str]:
    """`docker run` flags for every option our sandbox sets on a run (labels aside); without the
    enforcer, Docker's init is PID 1 instead."""
    spec = RunSpec(DEFAULT_IMAGE, ["true"], [], {}, 30)
    o = container_options(spec, default_limits(), {}, enforced=enforced)
    flags = ["--network", o["network_mode"], "--user", o["user"], "--ipc", o["ipc_mode"]]
    flags += ["--shm-size", str(o["shm_size"]), "--pids-limit", str(o["pids_limit"])]
    flags += ["--memory", str(o["mem_limit"]), "--memory-swap", str(o["memswap_limit"])]
    flags += ["--cpus", f"{o['nano_cpus'] / 1e9:g}", "--log-driver", o["log_config"].type]
    flags += ["--read-only"] * o["read_only"] + ["--init"] * o["init"]
    flags += [f"--tmpfs={path}:{opts}" for path, opts in o["tmpfs"].items()]
    flags += [f"--cap-drop={cap}" for cap in o["cap_drop"]]
    flags += [f"--security-opt={opt}" for opt in o["security_opt"]]
    flags += [f"--ulimit={u['Name']}={u['Soft']}:{u['Hard']}" for u in o["ulimits"]]
    flags += [f"--log-opt={k}={v}" for k, v in o["log_config"].config.items()]
    return flags


def sandbox_runs(times: int, volume: bool) -> list[float]:
    """One `true` container at a time through DockerSandbox, optionally in an output volume.
    A run the sandbox reports as an engine fault is repeated (and said), as a night would."""
    sandbox = DockerSandbox(default_limits(), run_id=f"bench-{os.getpid()}")
    spec = RunSpec(DEFAULT_IMAGE, ["true"], [], {}, 30, purpose="bench")
    size = SandboxConfig().output_dir_size.bytes

    def once() -> None:
        if not volume:
            sandbox.run(spec)
            return
        with sandbox.scratch(size) as scratch:
            sandbox.run(replace(spec, mounts=[ScratchMount(scratch, "/overnight/output", False)]))

    walls: list[float] = []
    faults = 0
    while len(walls) < times + 1:  # the first is a warm-up: a new image is probed once
        started = time.perf_counter()
        try:
            once()
        except EngineUnavailable as fault:
            faults += 1
            print(f"    engine fault, repeated: {fault}", flush=True)
            continue
        walls.append(time.perf_counter() - started)
    return walls[1:]


def leftovers(*filters: str) -> list[str]:
    args = ["docker", "ps", "-a", "-q"]
    for label in filters:
        args += ["--filter", f"label={label}"]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return out.split()


def owner_of(container: str) -> str:
    out = subprocess.run(
        ["docker", "inspect", "-f", f'{{{{index .Config.Labels "{LABEL_PID}"}}}}', container],
        check=False,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return f"pid {out or '?'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=10, help="N per mode (default 10)")
    parser.add_argument("--skip-inline", action="store_true", help="only the protected mode")
    args = parser.parse_args(argv)
    n = args.experiments
    if n < 1:
        parser.error("--experiments must be 1 or more")

    modes = [PROTECTED] if args.skip_inline else [PROTECTED, INLINE]
    print(f"overhead benchmark: {n} experiments per mode, image {DEFAULT_IMAGE}", flush=True)
    results: list[HarnessResult] = []
    with tempfile.TemporaryDirectory(prefix="overnight-bench-") as tmp:
        for mode in modes:
            results.append(measure_harness(Path(tmp), mode, n))
    print(f"  bare docker run x{n} (true, then python3 -c pass)", flush=True)
    bare_true = bare_docker(["true"], n)
    bare_python = bare_docker(["python3", "-c", "pass"], n)
    print(f"  hardened docker run x{n}, sandbox.run x{n}, with the output volume x{n}", flush=True)
    hardened = bare_docker(["true"], n, hardened_flags())
    print(f"  hardened docker run x{n} with the enforcer as PID 1", flush=True)
    enforced = bare_docker(deadline.enforced(["true"], 30), n, hardened_flags(enforced=True))
    in_sandbox = sandbox_runs(n, volume=False)
    with_volume = sandbox_runs(n, volume=True)

    print()
    print("measured: harness s/exp = (t_N - t_0) / N, each the wall time of a whole run_night")
    print(
        "          on a fresh tag after a warm-up (setup cached); bare = `docker run --rm` via CLI"
    )
    print()
    header = (
        f"{'':34}{'mean s':>9}{'median s':>10}{'containers':>12}{'x bare':>9}{'x bare/ctr':>12}"
    )
    print(header)
    print("-" * len(header))
    bare_mean = statistics.mean(bare_true)

    def line(label: str, mean: float, median: float | None, containers: int | None) -> None:
        med = f"{median:10.3f}" if median is not None else f"{'-':>10}"
        ctr = f"{containers:12d}" if containers is not None else f"{'-':>12}"
        ratio = f"{mean / bare_mean:9.2f}"
        per_ctr = f"{mean / containers / bare_mean:12.2f}" if containers else f"{'-':>12}"
        print(f"{label:34}{mean:9.3f}{med}{ctr}{ratio}{per_ctr}")

    for r in results:
        line(f"harness {r.mode.name}: (t_N-t_0)/N", r.per_experiment, None, r.mode.containers)
        line(
            f"  {r.mode.name}: decision gaps",
            statistics.mean(r.gaps),
            statistics.median(r.gaps),
            r.mode.containers,
        )
        line(
            f"  {r.mode.name}: in-container (ledger)",
            statistics.mean(r.in_container),
            statistics.median(r.in_container),
            r.mode.containers,
        )
    line("bare docker run ... true", bare_mean, statistics.median(bare_true), 1)
    line(
        "bare docker run ... python3 -c pass",
        statistics.mean(bare_python),
        statistics.median(bare_python),
        1,
    )
    line("hardened docker run ... true", statistics.mean(hardened), statistics.median(hardened), 1)
    line("  enforcer as PID 1 ... true", statistics.mean(enforced), statistics.median(enforced), 1)
    line("sandbox.run(true)", statistics.mean(in_sandbox), statistics.median(in_sandbox), 1)
    line(
        "  + output volume and keeper",
        statistics.mean(with_volume),
        statistics.median(with_volume),
        2,
    )
    print()
    print(
        f"hardening overhead: hardened / bare `docker run --rm {DEFAULT_IMAGE} true` = "
        f"{statistics.mean(hardened) / bare_mean:.2f} (CLI, the same command with our flags); "
        f"sandbox.run / bare = {statistics.mean(in_sandbox) / bare_mean:.2f}; "
        f"with the output volume = {statistics.mean(with_volume) / bare_mean:.2f}"
    )
    print(
        "enforcer overhead per container: hardened with the enforcer as PID 1 / hardened with "
        f"Docker's init = {statistics.mean(enforced) / statistics.mean(hardened):.2f} "
        f"(+{statistics.mean(enforced) - statistics.mean(hardened):.3f} s)"
    )
    print()
    print(
        "x bare = mean / mean(bare `true`); x bare/ctr = the same per container the experiment uses"
    )
    print("in-container = the sandbox's start-to-exit wall time of train (+ evaluate), as rounded")
    print(
        "to 0.1s in results.tsv, without create, log read and remove; decision gaps = time between"
    )
    print("consecutive ledger decisions (events.jsonl)")
    for r in results:
        counts = {s: r.statuses.count(s) for s in sorted(set(r.statuses))}
        print(
            f"{r.mode.name}: t_0 {r.t_zero:.2f}s, t_N {r.t_n:.2f}s, statuses {counts}, "
            f"stopped: {r.stop_reason}"
        )

    mine = f"{LABEL_PID}={os.getpid()}"
    ours = leftovers(mine)
    if ours:
        subprocess.run(["docker", "rm", "-f", *ours], check=False, capture_output=True)
        print(f"removed {len(ours)} container(s) this benchmark left behind")
    print(f"containers labelled {LABEL} left by this benchmark: {len(leftovers(mine))}")
    others = leftovers(LABEL)
    owners = sorted({owner_of(c) for c in others})
    print(
        f"containers labelled {LABEL} on this machine: {len(others)}"
        + (f" (owned by other processes: {', '.join(owners)})" if others else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
