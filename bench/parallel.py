"""How many more experiments per hour do more workers give, locally and through Ray?

Runs real nights (`overnight run TASK --workers N`, the offline `mutate` agent, a fresh container
per step) on two tasks and prints experiments per hour for 1, 2, 4 and 8 workers side by side,
as ratios to 1 worker, for the local executor and for `--executor ray` on a Ray cluster this
benchmark starts on 127.0.0.1 (and stops afterwards):
  * sleeping (bench/tasks/sleeping): train.py sleeps --sleep seconds and uses almost no CPU or
    memory, so the machine's cores are not the limit; the goal is at least 0.9 x N;
  * quickstart (tasks/quickstart): a small numpy training that does use the CPUs.

What is measured, per night (one task folder per task, a fresh tag per night; one night with no
experiment first, so `python prepare.py` and first-use costs are paid before anything is timed):
  * experiments per hour, from the timestamps in events.jsonl (setup, the baseline and the
    process's start and end left out; skipped proposals not counted): in the table, the results
    after the night's first N (its first wave) over the time from the N-th result to the last,
    what a long night keeps up; each night's line also gives the whole night's, from the
    baseline's decision to the last decision (with Ray, the first wave waits for a worker
    process per slot, which every night starts anew);
  * in flight: the most experiments whose containers ran at the same moment (each run event's
    end minus its train and evaluate seconds), which shows that N workers really ran N at once;
  * start to result: the median seconds from an experiment's start to its result, beside its
    containers' own run time (what more workers cost each experiment: the engine's time);
  * the engine's own cost: bare `docker run --rm IMAGE true` one at a time and N at once;
  * harness time per experiment at 1 worker: the median of (gap between consecutive decisions -
    the experiment's train and evaluate seconds), everything but the containers' own run time;
  * what Ray adds per experiment, dispatch to result: bench/ray_dispatch.py on each task, the
    same train.py measured directly and through Ray, interleaved (Ray's share: the head's call
    to the result minus the measurement on the node), and a no-op Ray task's round trip on the
    same cluster as its floor. Local and Ray nights of the same N run one after the other.

Usage: .venv/bin/python bench/parallel.py [--quick] [--sleep 3] [--experiments 32]
           [--workers 1,2,4,8] [--tasks sleeping,quickstart] [--no-ray] [--keep]
--quick: 8 experiments per night, workers 1, 2 and 4. Nothing is asserted; it prints a table and
whether the goals were met. The task folders, the Ray cluster and every container the nights
started are removed afterwards, on Ctrl-C too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.image import DEFAULT_IMAGE  # noqa: E402
from sandbox.labels import LABEL, LABEL_PID, LABEL_RUN  # noqa: E402

TASKS = {
    "sleeping": ROOT / "bench" / "tasks" / "sleeping",
    "quickstart": ROOT / "tasks" / "quickstart",
}
BENCH_LABEL = "overnight-bench.pid"  # on the bare containers of the engine's ceiling
CONTAINERS_PER_EXPERIMENT = 3  # protected: the output volume's keeper, train, evaluate
GOAL_SPEEDUP = 0.9  # of N, on the sleeping task
GOAL_RAY = 0.1  # Ray within this fraction of the local executor
NOT_RUN = {"skipped"}


@dataclass(frozen=True)
class Night:
    """What one night's events.jsonl says about its pace."""

    experiments: int  # that ran: every decision after the baseline but skipped ones
    skipped: int
    span: float  # seconds from the baseline's decision to the last decision
    in_flight: int  # most experiments whose containers ran at one moment
    harness_seconds: float | None  # median per experiment outside the containers' run time
    nodes: frozenset[str]  # where the runs ran ("where" in run events; empty: locally)
    # Most experiments the loop had started and not yet decided (the `running` list of its
    # `started` events; 0 in a build whose loop runs one at a time and logs none).
    started_at_once: int = 0
    # Experiments per hour after the night's first wave (its first N results): what a long night
    # keeps up, without what each night pays once (Ray starts a worker process per slot).
    steady: float | None = None
    turnaround: float | None = None  # median seconds from an experiment's start to its result
    inside: float | None = None  # of which its containers ran (median train + evaluate seconds)

    @property
    def per_hour(self) -> float:
        return self.experiments / self.span * 3600 if self.span > 0 else math.nan

    @property
    def hourly(self) -> float:
        """The steady pace when the night was long enough to have one, else the whole night's."""
        return self.steady if self.steady is not None else self.per_hour


@dataclass
class Cell:
    night: Night | None = None
    problem: str = ""  # why there is no number


@dataclass
class Row:
    task: str
    executor: str
    cells: dict[int, Cell] = field(default_factory=dict)


def read_events(run_dir: Path) -> list[dict]:
    lines = (run_dir / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def pace(events: list[dict], first_wave: int = 1) -> Night:
    decisions = [e for e in events if e.get("event") == "decision"]
    baseline = [float(e["ts"]) for e in decisions if int(e["experiment"]) == 0]
    later = [e for e in decisions if int(e["experiment"]) > 0]
    ran = [e for e in later if e.get("status") not in NOT_RUN]
    start = max(baseline) if baseline else min(float(e["ts"]) for e in events)
    end = max((float(e["ts"]) for e in later), default=start)
    runs = [e for e in events if e.get("event") == "run" and int(e["experiment"]) > 0]
    return Night(
        experiments=len(ran),
        skipped=len(later) - len(ran),
        span=end - start,
        in_flight=_most_at_once([_interval(e) for e in runs]),
        started_at_once=max(
            (len(e.get("running") or []) for e in events if e.get("event") == "started"),
            default=0,
        ),
        harness_seconds=_harness_seconds(later, runs, start),
        nodes=frozenset(str(e["where"]) for e in runs if e.get("where")),
        steady=_steady(sorted(float(e["ts"]) for e in ran), first_wave),
        **_turnaround(events, runs),
    )


def _steady(ends: list[float], first_wave: int) -> float | None:
    """Results per hour from the first wave's last result to the night's last one."""
    if len(ends) <= first_wave or ends[-1] <= ends[first_wave - 1]:
        return None
    return (len(ends) - first_wave) / (ends[-1] - ends[first_wave - 1]) * 3600


def _turnaround(events: list[dict], runs: list[dict]) -> dict[str, float]:
    """Mean start-to-result seconds of the experiments' first runs, and their containers' share.
    An experiment starts at its `started` event (--workers > 1) or else its `proposal` event."""
    starts: dict[int, float] = {}
    for event in events:
        if event.get("event") in ("proposal", "started") and "experiment" in event:
            starts[int(event["experiment"])] = float(event["ts"])  # `started` comes later
    first = [
        r
        for r in runs
        if not r.get("confirmation") and not r.get("remeasure") and int(r["experiment"]) in starts
    ]
    if not first:
        return {}
    ends = [float(r["ts"]) - starts[int(r["experiment"])] for r in first]
    inside = [_interval(r)[1] - _interval(r)[0] for r in first]
    return {"turnaround": statistics.median(ends), "inside": statistics.median(inside)}


def _interval(run: dict) -> tuple[float, float]:
    end = float(run["ts"])
    return end - float(run.get("train_seconds") or 0) - float(run.get("eval_seconds") or 0), end


def _most_at_once(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    most = running = 0
    for _, step in edges:  # an end sorts before a start at the same instant
        running += step
        most = max(most, running)
    return most


def _harness_seconds(decisions: list[dict], runs: list[dict], start: float) -> float | None:
    """Per experiment, the gap since the previous decision minus its containers' run time; the
    median over the night. Meaningful at one worker only, where experiments do not overlap."""
    inside: dict[int, float] = {}
    for run in runs:
        number = int(run["experiment"])
        seconds = float(run.get("train_seconds") or 0) + float(run.get("eval_seconds") or 0)
        inside[number] = inside.get(number, 0.0) + seconds
    previous, spent = start, []
    for decision in sorted(decisions, key=lambda e: float(e["ts"])):
        number = int(decision["experiment"])
        if number in inside:
            spent.append(float(decision["ts"]) - previous - inside[number])
        previous = float(decision["ts"])
    return statistics.median(spent) if spent else None


# --- the task folders -------------------------------------------------------------------------


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def make_task(name: str, parent: Path, sleep: float) -> Path:
    """A committed copy of the task in its own git repository, as a user would have it."""
    task = parent / name
    shutil.copytree(TASKS[name], task, ignore=shutil.ignore_patterns(".overnight", "__pycache__"))
    if name == "sleeping":
        prepare = task / "prepare.py"
        text, count = re.subn(
            r"^SLEEP_SECONDS = .*$", f"SLEEP_SECONDS = {sleep!r}", prepare.read_text(), flags=re.M
        )
        assert count == 1, "bench/tasks/sleeping/prepare.py lost its SLEEP_SECONDS line"
        prepare.write_text(text)
    git(task, "init", "-q")
    git(task, "add", "-A")
    git(task, "commit", "-qm", "task")
    return task


# --- the nights -------------------------------------------------------------------------------


class Nights:
    """Runs `overnight run` as child processes and remembers their pids, whose containers are
    removed at the end whatever happened."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.pids: set[int] = set()
        self.count = 0

    def run(self, task: Path, tag: str, experiments: int, flags: list[str]) -> tuple[int, str]:
        self.count += 1
        log = self.logs / f"{self.count:02d}-{tag}.log"
        command = [sys.executable, "-m", "harness.cli", "run", str(task), "--tag", tag]
        command += ["--max-experiments", str(experiments), *flags]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with open(log, "w") as out:
            child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
            self.pids.add(child.pid)
            try:
                code = child.wait()
            except BaseException:
                _stop(child)  # Ctrl-C reached it too: let it stop its containers first
                raise
        return code, log.read_text(errors="replace")


def _stop(child: subprocess.Popen[Any]) -> None:
    for sig, wait in ((signal.SIGINT, 30), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        if child.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(wait)


def tail(text: str, lines: int = 8) -> str:
    return "\n".join("    " + line for line in text.strip().splitlines()[-lines:])


def remove_containers(pids: set[int], tag_prefix: str) -> int:
    """Containers of ours left by this benchmark's nights: started by one of `pids`, or for a
    run whose tag this benchmark chose. Returns how many were removed."""
    listed = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"label={LABEL}", "--format", "{{.ID}}\t{{.Labels}}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    mine = []
    for line in listed.splitlines():
        ident, _, labels = line.partition("\t")
        values = dict(item.partition("=")[::2] for item in labels.split(","))
        pid = values.get(LABEL_PID, "")
        if (pid.isdigit() and int(pid) in pids) or values.get(LABEL_RUN, "").startswith(tag_prefix):
            mine.append(ident)
    if mine:
        subprocess.run(["docker", "rm", "-f", *mine], capture_output=True, check=False)
    return len(mine)


def engine_ceiling(at_once: int, rounds: int = 2) -> float | None:
    """Bare containers per second this engine starts and removes with `at_once` at a time
    (`docker run --rm IMAGE true`): a ceiling for any night here, whatever its workers."""
    label = f"{BENCH_LABEL}={os.getpid()}"
    command = ["docker", "run", "--rm", "--label", label, "--network", "none", DEFAULT_IMAGE]
    started = time.monotonic()
    for _ in range(rounds):
        children = [
            subprocess.Popen(
                [*command, "true"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            for _ in range(at_once)
        ]
        if any(child.wait() != 0 for child in children):
            return None
    return at_once * rounds / (time.monotonic() - started)


def print_engine(alone: float, ceiling: float, at_once: int) -> None:
    """What the engine alone costs the nights: every experiment is 3 container lifecycles."""
    per = CONTAINERS_PER_EXPERIMENT
    print(
        f"this engine: bare containers (`docker run --rm {DEFAULT_IMAGE} true`) go at "
        f"{alone:.1f}/s one at a time, {ceiling:.1f}/s {at_once} at once; at {per} per experiment, "
        f"{at_once} experiments started together wait ~{at_once * per / ceiling:.1f}s for it "
        f"(one alone ~{per / alone:.1f}s), and no night here passes "
        f"~{ceiling / per * 3600:,.0f} experiments/h"
    )


def remove_bare_containers() -> None:
    listed = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={BENCH_LABEL}={os.getpid()}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if listed:
        subprocess.run(["docker", "rm", "-f", *listed], capture_output=True, check=False)


# --- the Ray cluster --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RayCluster:
    """A one-node Ray cluster on 127.0.0.1 for this benchmark alone: every port its own, its own
    temp dir, `ray start --block` in a session of its own, so stopping it ends exactly the
    processes it started (never `ray stop`, which ends every cluster on the machine)."""

    def __init__(self, cpus: int, parent: Path) -> None:
        self.cpus = cpus
        # Short: Ray's socket paths live under it, and a unix socket path has ~107 bytes.
        self.temp = Path(tempfile.mkdtemp(prefix="ovb-ray-", dir="/tmp"))
        self.log = parent / "ray-start.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        ray = Path(sys.executable).with_name("ray")
        command = [str(ray) if ray.exists() else "ray", "start", "--head", "--block"]
        command += ["--node-ip-address=127.0.0.1", f"--port={self.port}"]
        command += [f"--num-cpus={self.cpus}", "--num-gpus=0", "--include-dashboard=false"]
        command += ["--disable-usage-stats", f"--temp-dir={self.temp}"]
        command += [f"--object-store-memory={200 * 1024**2}"]
        for option in (
            "node-manager-port",
            "object-manager-port",
            "metrics-export-port",
            "dashboard-agent-listen-port",
            "dashboard-agent-grpc-port",
            "runtime-env-agent-port",
        ):
            command.append(f"--{option}={free_port()}")
        # The workers import the harness the nights run (this checkout).
        env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
        with open(self.log, "w") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=out, env=env, start_new_session=True
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ray start exited {self.process.returncode}:\n{self._tail()}")
            if "Ray runtime started" in self.log.read_text(errors="replace"):
                return
            time.sleep(0.5)
        raise RuntimeError(f"ray start did not come up in 120s:\n{self._tail()}")

    def _tail(self) -> str:
        return tail(self.log.read_text(errors="replace"), 15)

    def pids(self) -> set[int]:
        """The processes of this cluster: its session, and any that name its temp dir."""
        found = set()
        marker = str(self.temp).encode()
        session = self.process.pid if self.process else -1
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                in_session = os.getsid(int(entry.name)) == session
                named = marker in (entry / "cmdline").read_bytes()
            except (OSError, ProcessLookupError):
                continue
            if in_session or named:
                found.add(int(entry.name))
        return found

    def stop(self) -> set[int]:
        """Stop every process of the cluster; returns their pids (owners of containers)."""
        pids = self.pids()
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)  # --block: it ends its children
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(30)
        deadline = time.monotonic() + 10
        while (left := self.pids()) and time.monotonic() < deadline:
            time.sleep(0.5)
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.temp, ignore_errors=True)
        return pids | left

    def noop_round_trip_ms(self) -> float | None:
        """The median round trip of a no-op Ray task on this cluster, from a driver of its own."""
        script = (
            "import statistics, sys, time\n"
            "import ray\n"
            "ray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False)\n"
            "noop = ray.remote(num_cpus=0)(lambda: None)\n"
            "ray.get(noop.remote())\n"
            "times = []\n"
            "for _ in range(50):\n"
            "    started = time.perf_counter()\n"
            "    ray.get(noop.remote())\n"
            "    times.append(time.perf_counter() - started)\n"
            "print(statistics.median(times) * 1000)\n"
        )
        try:
            done = subprocess.run(
                [sys.executable, "-c", script, self.address],
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
            )
            return float(done.stdout.strip().splitlines()[-1])
        except (subprocess.SubprocessError, ValueError, IndexError):
            return None


def ray_installed() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


# --- the table --------------------------------------------------------------------------------


WIDTH = 24  # of a column; the last MARK of it holds "[k]" when fewer than N ran at once
MARK = 5


def format_cell(cell: Cell, base: Cell, workers: int) -> str:
    if cell.night is None:
        return f"{cell.problem or '-':>{WIDTH - MARK}}"
    rate = cell.night.hourly
    ratio = f"{rate / base.night.hourly:.2f}x" if base.night and base.night.hourly > 0 else ""
    fewer = f"[{cell.night.in_flight}]" if cell.night.in_flight < workers else ""
    return f"{f'{rate:,.0f}/h':>{WIDTH - MARK - 7}} {ratio:>6} {fewer}"


def format_turnaround(cell: Cell) -> str:
    night = cell.night
    if night is None or night.turnaround is None or night.inside is None:
        return f"{'-':>{WIDTH - MARK}}"
    return f"{f'{night.turnaround:.2f} ({night.inside:.2f})':>{WIDTH - MARK}}"


def print_rows(title: str, rows: list[Row], workers: list[int], cell: Callable[..., str]) -> None:
    print()
    print(title)
    names = [f"{n} worker" + ("s" if n > 1 else "") for n in workers]
    header = f"{'task':<11}{'executor':<9}" + "".join(
        f"{name:>{WIDTH - MARK}}" + " " * MARK for name in names
    )
    print(header.rstrip())
    print("-" * len(header))
    for row in rows:
        texts = [cell(row, n) for n in workers]
        print(
            (f"{row.task:<11}{row.executor:<9}" + "".join(f"{t:<{WIDTH}}" for t in texts)).rstrip()
        )


def print_table(rows: list[Row], workers: list[int], experiments: int, sleep: float) -> None:
    print_rows(
        f"experiments per hour and the ratio to 1 worker; {experiments} experiments per night, "
        f"the sleeping task sleeps {sleep:g}s; counted after each night's first N results "
        "(what a long night keeps up)",
        rows,
        workers,
        lambda row, n: format_cell(row.cells.get(n, Cell()), row.cells.get(1, Cell()), n),
    )
    print(
        "[k]: at most k experiments' containers ran at the same moment, fewer than N (short "
        "runs, or Ray still starting a worker)"
    )
    print_rows(
        "seconds per experiment from its start to its result (of which its containers ran)",
        rows,
        workers,
        lambda row, n: format_turnaround(row.cells.get(n, Cell())),
    )


def rate(row: Row | None, workers: int) -> float | None:
    cell = row.cells.get(workers) if row else None
    return cell.night.hourly if cell and cell.night else None


def print_verdicts(rows: list[Row], workers: list[int], round_trip: float | None) -> None:
    by = {(r.task, r.executor): r for r in rows}
    print()
    for task in dict.fromkeys(r.task for r in rows):
        local, ray = by.get((task, "local")), by.get((task, "ray"))
        pairs = [(n, rate(ray, n), rate(local, n)) for n in workers]
        ratios = [f"{n}: {r / lo:.2f}" for n, r, lo in pairs if r and lo]
        if ratios:
            print(f"{task}: ray / local at the same workers  " + ", ".join(ratios))
        spent = {r.executor: s for r in (local, ray) if r and (s := harness_ms(r))}
        if "local" in spent:
            line = f"{task}: harness time per experiment at 1 worker: local {spent['local']:.0f} ms"
            if "ray" in spent:
                line += f", ray {spent['ray']:.0f} ms (two nights apart: mostly the machine's load)"
            print(line)
    if round_trip is not None:
        print(
            f"a no-op Ray task's round trip on the same cluster: {round_trip:.2f} ms (median of 50)"
        )

    sleeping = by.get(("sleeping", "local"))
    base = rate(sleeping, 1)
    speedups = [(n, got / base) for n in workers[1:] if base and (got := rate(sleeping, n))]
    if speedups:
        judged = [f"{n}: {x:.2f}x {_met(x >= GOAL_SPEEDUP * n)}" for n, x in speedups]
        print(f"goal: sleeping, local, >= {GOAL_SPEEDUP} x N  " + ", ".join(judged))
    for task in dict.fromkeys(r.task for r in rows):
        local, ray = by.get((task, "local")), by.get((task, "ray"))
        pairs = [(n, rate(ray, n), rate(local, n)) for n in workers]
        judged = [f"{n}: {_met(r >= (1 - GOAL_RAY) * lo)}" for n, r, lo in pairs if r and lo]
        if judged:
            print(f"goal: {task}, ray within {GOAL_RAY:.0%} of local  " + ", ".join(judged))


def harness_ms(row: Row) -> float | None:
    """Milliseconds per experiment outside the containers, at 1 worker."""
    cell = row.cells.get(1)
    seconds = cell.night.harness_seconds if cell and cell.night else None
    return None if seconds is None else seconds * 1000


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


# --- main -------------------------------------------------------------------------------------


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 experiments, workers 1, 2, 4")
    parser.add_argument("--sleep", type=float, default=3.0, help="seconds the sleeping task waits")
    parser.add_argument("--experiments", type=int, help="per night (default 32; --quick 8)")
    parser.add_argument("--workers", help="comma-separated (default 1,2,4,8; --quick 1,2,4)")
    parser.add_argument("--tasks", default="sleeping,quickstart", help="of: sleeping, quickstart")
    parser.add_argument("--no-ray", action="store_true", help="the local executor only")
    parser.add_argument("--keep", action="store_true", help="keep the task folders and logs")
    args = parser.parse_args(argv)
    args.experiments = args.experiments or (8 if args.quick else 32)
    default = "1,2,4" if args.quick else "1,2,4,8"
    args.workers = sorted({int(n) for n in (args.workers or default).split(",")} | {1})
    args.tasks = [t for t in args.tasks.split(",") if t]
    for task in args.tasks:
        if task not in TASKS:
            parser.error(f"unknown task {task!r}: choose from {', '.join(TASKS)}")
    if args.experiments < 1 or args.sleep < 0 or min(args.workers) < 1:
        parser.error("--experiments, --workers must be 1 or more and --sleep not negative")
    return args


class Bench:
    """One run of the benchmark: its nights, its Ray cluster, and what it learned on the way
    (a build without parallel workers or without the Ray executor is measured as far as it goes,
    and said)."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.workers: list[int] = args.workers
        self.work = work
        self.prefix = f"p{os.getpid()}-"  # every tag, so leftovers are recognised as ours
        self.nights = Nights(work)
        self.cluster: RayCluster | None = None
        self.cluster_pids: set[int] = set()
        self.parallel_note = ""
        self.ray_note = ""
        self.round_trip: float | None = None
        self.dispatch: dict[str, dict[str, float] | None] = {}  # per task, ray_dispatch.py's
        self.engine: tuple[float | None, float | None] = (None, None)
        executors = ["local"]
        if args.no_ray:
            self.ray_note = "ray: left out (--no-ray)"
        elif not ray_installed():
            self.ray_note = "ray: not installed (pip install 'overnight[ray]')"
        else:
            executors.append("ray")
        self.rows = [Row(task, executor) for task in args.tasks for executor in executors]

    def run(self) -> None:
        if any(r.executor == "ray" for r in self.rows):
            self.start_ray()
        for name in self.args.tasks:
            self.run_task(name)
        self.engine = engine_ceiling(1, rounds=4), engine_ceiling(max(self.workers))

    def start_ray(self) -> None:
        # Logical CPUs: more than the widest night asks for (each experiment asks for its
        # sandbox.cpus), so Ray never queues what the local executor runs at once.
        self.cluster = RayCluster(cpus=max(self.workers) * 4, parent=self.work)
        print(f"  ray: starting a local cluster at {self.cluster.address}", flush=True)
        try:
            self.cluster.start()
        except RuntimeError as fault:
            self.say_ray(f"ray: the local cluster did not start: {fault}")
            self.rows = [r for r in self.rows if r.executor != "ray"]
            return
        self.round_trip = self.cluster.noop_round_trip_ms()

    def run_task(self, name: str) -> None:
        task = make_task(name, self.work, self.args.sleep)
        rows = [r for r in self.rows if r.task == name]
        code, out = self.nights.run(task, f"{self.prefix}warm", 0, [])
        if code != 0:
            print(f"  {name}: the warm-up night failed (exit {code}):\n{tail(out)}")
            for row in rows:
                row.cells = {n: Cell(problem="warm-up failed") for n in self.workers}
            return
        for n in self.workers:  # local and Ray side by side in time: the load here drifts
            for row in rows:
                row.cells[n] = self.run_cell(task, row, n)
        if (
            self.cluster is not None
            and not self.ray_note
            and any(r.executor == "ray" for r in rows)
        ):
            self.dispatch[name] = self.ray_dispatch(task)

    def ray_dispatch(self, task: Path) -> dict[str, float] | None:
        """bench/ray_dispatch.py on this task and cluster: what Ray adds to one measurement."""
        assert self.cluster is not None
        command = [sys.executable, str(ROOT / "bench" / "ray_dispatch.py"), str(task), "--json"]
        command += ["--address", self.cluster.address, "--runs", "3" if self.args.quick else "5"]
        print(
            f"  {task.name}: what Ray adds to one measurement (bench/ray_dispatch.py)", flush=True
        )
        child = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self.nights.pids.add(child.pid)
        try:
            out, err = child.communicate(timeout=900)
        except BaseException:
            _stop(child)
            raise
        try:
            found = json.loads(out.strip().splitlines()[-1])
            return {key: float(found[key]) for key in ("direct_ms", "ray_ms", "dispatch_ms")}
        except (IndexError, ValueError, KeyError):
            print(f"  {task.name}: bench/ray_dispatch.py failed (exit {child.returncode}):")
            print(tail(err + out))
            return None

    def run_cell(self, task: Path, row: Row, workers: int) -> Cell:
        if workers > 1 and self.parallel_note:
            return Cell(problem="not parallel")
        flags = ["--workers", str(workers)]
        if row.executor == "ray":
            if self.ray_note or self.cluster is None:
                return Cell(problem="no ray")
            flags += ["--executor", "ray", "--ray-address", self.cluster.address]
        tag = f"{self.prefix}{row.executor}-w{workers}"
        label = f"{row.task} {row.executor} {workers} worker(s)"
        started = time.monotonic()
        code, out = self.nights.run(task, tag, self.args.experiments, flags)
        if code != 0:
            print(f"  {label}: exit {code}:\n{tail(out)}", flush=True)
            if row.executor == "ray" and workers == 1:
                self.say_ray(f"ray: the first night through Ray failed (exit {code})")
            return Cell(problem=f"exit {code}")
        night = pace(read_events(task / ".overnight" / tag), first_wave=workers)
        print(
            f"  {label}: {night.experiments} experiments in {night.span:.1f}s = "
            f"{night.per_hour:,.0f}/h"
            + (f" ({night.steady:,.0f}/h after the first {workers})" if night.steady else "")
            + f", {night.in_flight} at once at most ({night.started_at_once or 1} started)"
            + (f", {night.skipped} skipped" if night.skipped else "")
            + f" (night {time.monotonic() - started:.0f}s)",
            flush=True,
        )
        if workers > 1 and night.started_at_once <= 1 and night.experiments > 1:
            self.parallel_note = (
                f"--workers {workers} ran one experiment at a time: this build of the loop does "
                "not run experiments in parallel yet, so only 1 worker is measured"
            )
            print(f"  {self.parallel_note}", flush=True)
        if row.executor == "ray" and not night.nodes:
            self.say_ray(
                "ray: --executor ray ran the experiments here, not as Ray tasks (no run event "
                "names a Ray node): not in this build"
            )
            return Cell(problem="ran locally")  # not Ray's numbers
        return Cell(night)

    def say_ray(self, note: str) -> None:
        self.ray_note = self.ray_note or note
        print(f"  {note}", flush=True)

    def clean_up(self) -> int:
        """Stop the cluster and remove every container the nights left; how many there were."""
        if self.cluster is not None:
            self.cluster_pids = self.cluster.stop()
        removed = remove_containers(self.nights.pids | self.cluster_pids, self.prefix)
        remove_bare_containers()
        return removed

    def report(self, removed: int) -> None:
        print_table(self.rows, self.workers, self.args.experiments, self.args.sleep)
        print_verdicts(self.rows, self.workers, self.round_trip)
        for task, found in self.dispatch.items():
            if found is not None:
                print(
                    f"{task}: Ray adds {found['dispatch_ms']:.1f} ms per experiment, dispatch to "
                    f"result (one measurement through Ray {found['ray_ms']:.0f} ms, directly "
                    f"{found['direct_ms']:.0f} ms; bench/ray_dispatch.py, medians, interleaved)"
                )
        alone, ceiling = self.engine
        if alone is not None and ceiling is not None:
            print_engine(alone, ceiling, max(self.workers))
        for note in (self.parallel_note, self.ray_note):
            if note:
                print(note)
        print(
            f"cleanup: ray cluster {'stopped' if self.cluster else 'not started'}; "
            f"{removed} container(s) left by these nights removed"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    uneven = [n for n in args.workers if args.experiments % n]
    print(
        f"parallel benchmark: tasks {', '.join(args.tasks)}; workers "
        f"{', '.join(map(str, args.workers))}; {args.experiments} experiments per night; "
        f"sleep {args.sleep:g}s",
        flush=True,
    )
    if uneven:
        print(f"  note: {args.experiments} is not a multiple of {uneven}: a last wave is partial")
    work = Path(tempfile.mkdtemp(prefix="overnight-parallel-"))
    bench = Bench(args, work)
    interrupted = False
    try:
        with sigterm_as_interrupt():
            bench.run()
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", flush=True)
        interrupted = True
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop the cleanup
        removed = bench.clean_up()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if interrupted:
        return 130
    bench.report(removed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
