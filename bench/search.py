"""Which offline agent finds more in a night? Random search, `mutate` and `optuna` (TPE) at equal
budgets, on the shipped tasks whose train.py has numeric constants to tune.

Each agent runs a real night (the CLI, a fresh container per experiment) of --budget experiments
on a fresh copy of each task, for --seeds seeds. Random search is the optuna agent with
`sampler = "random"`: the same constants and ranges, values drawn uniformly (log-uniform for
positive floats). For each task and agent it prints the median over seeds of
  * best/baseline: the best metric after the budget as a ratio to the baseline metric;
  * to 90%: the experiments it needed for its best-so-far to reach 90% of the largest improvement
    any run on that task found ("-" when it never did; the median counts those as never).

Usage: .venv/bin/python bench/search.py [--budget 30] [--seeds 3] [--tasks quickstart,trading]
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.cli import main as overnight  # noqa: E402
from harness.ledger import read_rows  # noqa: E402
from harness.seams import Verdict  # noqa: E402

AGENTS = ("random", "mutate", "optuna")


@dataclass(frozen=True)
class Night:
    task: str
    agent: str
    seed: int
    baseline: float
    best_so_far: list[float]  # after each experiment 1..budget
    seconds: float
    maximize: bool

    def improvement(self, value: float) -> float:
        return value - self.baseline if self.maximize else self.baseline - value


def run(task_name: str, agent: str, seed: int, budget: int, workdir: Path) -> Night:
    task = workdir / f"{task_name}-{agent}-{seed}"
    shutil.copytree(ROOT / "tasks" / task_name, task, ignore=shutil.ignore_patterns(".overnight"))
    flags = ["--provider", agent, "--seed", str(seed)]
    if agent == "random":
        toml = task / "overnight.toml"
        toml.write_text(
            toml.read_text()
            + f'\n[agent]\nprovider = "optuna"\nsampler = "random"\nseed = {seed}\n'
        )
        flags = []
    started = time.monotonic()
    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        code = overnight(["run", str(task), "--tag", "b", "--max-experiments", str(budget), *flags])
    if code != 0:
        raise SystemExit(
            f"{task_name} {agent} seed {seed}: exit {code}\n{output.getvalue()[-2000:]}"
        )
    return read_night(task, task_name, agent, seed, budget, time.monotonic() - started)


def read_night(task: Path, name: str, agent: str, seed: int, budget: int, seconds: float) -> Night:
    """A finished night's best-so-far curve, from its results.tsv."""
    rows = read_rows(task / ".overnight" / "b" / "results.tsv")
    config = json.loads((task / ".overnight" / "b" / "config.json").read_text())
    maximize = config["settings"]["direction"] == "maximize"
    baseline = rows[0].metric
    assert baseline is not None
    best, curve = baseline, []
    for number in range(1, budget + 1):
        for row in rows:
            if row.experiment == number and row.status is Verdict.KEEP and row.metric is not None:
                best = row.metric
        curve.append(best)
    return Night(name, agent, seed, baseline, curve, seconds, maximize)


def report(nights: list[Night], budget: int) -> None:
    print(f"\nmedian over seeds, {budget} experiments each")
    print(f"{'task':<11} {'agent':<7} {'best/baseline':>13} {'to 90%':>7} {'night s':>8}  runs")
    for task in dict.fromkeys(n.task for n in nights):
        of_task = [n for n in nights if n.task == task]
        top = max(n.improvement(n.best_so_far[-1]) for n in of_task)
        for agent in AGENTS:
            runs = [n for n in of_task if n.agent == agent]
            ratios = [n.best_so_far[-1] / n.baseline for n in runs]
            reach = [_reached(n, 0.9 * top) for n in runs]
            median_reach = statistics.median(reach)
            shown = "-" if math.isinf(median_reach) else f"{median_reach:g}"
            detail = ", ".join(
                f"{n.best_so_far[-1]:.5g}@{'-' if math.isinf(r) else int(r)}"
                for n, r in zip(runs, reach, strict=True)
            )
            seconds = statistics.median(n.seconds for n in runs)
            print(
                f"{task:<11} {agent:<7} {statistics.median(ratios):>13.4f} {shown:>7} "
                f"{seconds:>8.0f}  {detail}"
            )
        print(f"{task:<11} baseline {of_task[0].baseline:.5g}; best improvement {top:.5g}")


def _reached(night: Night, target: float) -> float:
    if target <= 0:
        return math.inf
    for number, value in enumerate(night.best_so_far, start=1):
        if night.improvement(value) >= target:
            return number
    return math.inf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=30, help="experiments per night")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tasks", default="quickstart,trading")
    options = parser.parse_args()
    nights = []
    with tempfile.TemporaryDirectory(prefix="overnight-search-") as workdir:
        for task in options.tasks.split(","):
            for seed in range(options.seeds):
                for agent in AGENTS:
                    night = run(task, agent, seed, options.budget, Path(workdir))
                    nights.append(night)
                    print(
                        f"{task} {agent} seed {seed}: best {night.best_so_far[-1]:.5g} "
                        f"(baseline {night.baseline:.5g}) in {night.seconds:.0f}s",
                        flush=True,
                    )
    report(nights, options.budget)


if __name__ == "__main__":
    main()
