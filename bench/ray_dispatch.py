"""What does Ray add to one measurement, from the head's call to its result?

The task's own train.py measured on this machine (the Experimenter a local night uses) and
through a Ray cluster (the RayMeasurer of --executor ray), interleaved, after one measurement
through Ray to start its worker and unpack the setup on the node: `harness.ray_executor.
bench_overhead`. It prints medians in milliseconds: direct, through Ray, and Ray's own share
(the call to the result minus the measurement on the node). No git, no ledger: the task folder's
setup cache is used (or made) and nothing else is written there.

Usage: .venv/bin/python bench/ray_dispatch.py TASK --address 127.0.0.1:PORT [--runs 5] [--json]
bench/parallel.py runs it on its own cluster. The containers and Ray tasks are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.backends import image_for, make_sandbox
from harness.config import resolve_settings
from harness.experiment import Experimenter
from harness.ledger import RunDir
from harness.overrides import Overrides
from harness.ray_executor import Overhead, RayMeasurer, bench_overhead
from harness.task import load_task


def measure(task_dir: Path, address: str, runs: int) -> Overhead:
    task = load_task(task_dir)
    settings = resolve_settings(task, Overrides(executor="ray", ray_address=address))
    run_id = f"ray-dispatch-{os.getpid()}"
    said: list[str] = []
    sandbox = make_sandbox(settings, run_id, said.append)
    sandbox.open()
    measurer: RayMeasurer | None = None
    try:
        image = image_for(sandbox, settings, task, said.append)
        sandbox.prepare(image)
        cache = RunDir(task.root, "ray-dispatch").cache
        experimenter = Experimenter(task, settings, sandbox, image, cache, say=said.append)
        experimenter.setup()
        measurer = RayMeasurer(experimenter, run_id, say=said.append)
        with tempfile.TemporaryDirectory(prefix="ray-dispatch-") as scratch:
            return bench_overhead(
                experimenter, measurer, task.train_source, Path(scratch) / "direct", runs
            )
    finally:
        if measurer is not None:
            measurer.close()
        sandbox.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", type=Path)
    parser.add_argument("--address", required=True, help="the Ray cluster, host:port")
    parser.add_argument("--runs", type=int, default=5, help="measurements each way (default 5)")
    parser.add_argument("--json", action="store_true", help="one JSON object, for bench/parallel")
    args = parser.parse_args(argv)
    overhead = measure(args.task.resolve(), args.address, args.runs)
    if args.json:
        print(json.dumps(asdict(overhead)))
    else:
        print(
            f"direct {overhead.direct_ms:.0f} ms, through Ray {overhead.ray_ms:.0f} ms, of which "
            f"Ray's own (dispatch to result, minus the node's measurement) "
            f"{overhead.dispatch_ms:.1f} ms; medians of {overhead.runs}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
