"""How long `overnight report` takes for nights of 100, 1,000 and 10,000 experiments.

    .venv/bin/python bench/report.py [--sizes 100,1000,10000] [--repeat 3]

Each night is a synthetic run folder written the way the harness writes one (results.tsv,
events.jsonl with proposal and run events, a diff.patch per kept experiment, output.txt per
failure, config.json), with a model agent's token usage on every proposal. The time is the best
of --repeat calls of write_report, after one warm-up call (matplotlib is imported once per night,
so its import is printed on its own).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.ledger import HEADER, format_row
from harness.seams import ExperimentRecord, Verdict

DIFF = """diff --git a/train.py b/train.py
--- a/train.py
+++ b/train.py
@@ -10,3 +10,3 @@
 import prepare
-LEARNING_RATE = {old}
+LEARNING_RATE = {new}
 EPOCHS = 4
"""


def make_night(folder: Path, size: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    rows, events, best, ts = [], [], 1.0, 1_700_000_000.0
    for number in range(size + 1):
        metric = best * (1 + rng.gauss(0.01, 0.03))
        status = Verdict.KEEP if number == 0 or metric < best else Verdict.DISCARD
        if number and rng.random() < 0.08:
            status, metric = rng.choice([Verdict.CRASH, Verdict.TIMEOUT, Verdict.INVALID]), None
        description = (
            "baseline" if number == 0 else f"change {number}: LEARNING_RATE x{rng.random():.3f}"
        )
        ts += 300
        events.append(_proposal(number, description, ts, rng))
        events.append({"ts": ts + 200, "event": "run", "experiment": number, "confirmation": 0,
                       "train_status": "ok", "train_seconds": 200.0, "eval_seconds": 20.0,
                       "metric": metric})  # fmt: skip
        events.append({"ts": ts + 220, "event": "decision", "experiment": number, "status": status})
        rows.append(ExperimentRecord(number, f"{number:07x}", metric, status, description, 220.0))
        experiment = folder / "experiments" / f"{number:04d}"
        experiment.mkdir(parents=True)
        if status is Verdict.KEEP:
            best = metric if metric is not None else best
            (experiment / "diff.patch").write_text(DIFF.format(old=0.01, new=number))
        elif status is not Verdict.DISCARD:
            (experiment / "output.txt").write_text("Traceback (most recent call last):\n" * 200)
    lines = ["\t".join(HEADER) + "\n"] + [format_row(r) for r in rows]
    (folder / "results.tsv").write_text("".join(lines))
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    config = {"settings": {"metric": "val_loss", "direction": "minimize", "protected": True,
                           "time_budget": 300, "timeout": 660, "sandbox": {}, "agent": {}}}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))


def _proposal(number: int, description: str, ts: float, rng: random.Random) -> dict:
    """A model agent's proposal event: a few edit calls with their outputs, and token usage."""
    calls = [
        {
            "input": {
                "command": "str_replace",
                "old_str": "x = 1\n" * 20,
                "new_str": "x = 2\n" * 20,
            },
            "output": "edited train.py\n" * 10,
            "is_error": False,
        }
        for _ in range(rng.randint(1, 4))
    ]
    usage = {"calls": 3, "input_tokens": 20_000, "cached_input_tokens": 15_000,
             "output_tokens": 900, "cost_usd": 0.02}  # fmt: skip
    return {"ts": ts, "event": "proposal", "experiment": number, "description": description,
            "seconds": 30.0, "calls": calls, "usage": usage}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    started = time.perf_counter()
    import matplotlib.figure  # noqa: F401

    from harness.report import write_report

    print(f"import matplotlib: {time.perf_counter() - started:.2f}s (once per process)")
    print(f"{'experiments':>12} {'report':>9} {'html':>9} {'png':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            folder = Path(tmp) / f"task{size}" / ".overnight" / "bench"
            make_night(folder, size)
            write_report(folder)  # warm-up: fonts and caches
            times = []
            for _ in range(args.repeat):
                begun = time.perf_counter()
                written = write_report(folder)
                times.append(time.perf_counter() - begun)
            html_kb = written.html.stat().st_size / 1024
            png_kb = written.plot.stat().st_size / 1024 if written.plot else 0
            print(f"{size:>12,} {min(times):>8.3f}s {html_kb:>7.0f}KB {png_kb:>7.0f}KB")


if __name__ == "__main__":
    main()
