"""Soak benchmark: a long night of instant experiments with the `mutate` agent.

Prints experiments per hour over the soak, the harness's resident and peak memory at 100 and
at N experiments, and how long `overnight status --json` takes on ledgers of N and of 10,000
rows. Run: .venv/bin/python bench/soak.py [--experiments 1000]
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PREPARE = 'METRIC = "score"\nDIRECTION = "maximize"\nTIME_BUDGET = 5\n'
TRAIN = """A = 1.0
B = 2.0
C = 3
D = 0.5
E = 10
score = -(A - 1.7) ** 2 - (B - 0.3) ** 2 - (C - 7) ** 2 / 10 - (D - 0.9) ** 2 - ((E - 40) / 40) ** 2
print(f"score: {score}")
"""


def make_task(root: Path) -> Path:
    task = root / "instant"
    task.mkdir()
    for name, text in {
        "program.md": "Raise the score.\n",
        "prepare.py": PREPARE,
        "train.py": TRAIN,
    }.items():
        (task / name).write_text(text)
    return task


def memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a live process, in KiB."""
    fields = dict(
        line.split(":", 1)
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if ":" in line
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def soak(task: Path, experiments: int) -> dict[str, object]:
    ledger = task / ".overnight/soak/results.tsv"
    command = [
        sys.executable,
        "-m",
        "harness.cli",
        "run",
        str(task),
        "--tag",
        "soak",
        "--max-experiments",
        str(experiments),
        "--seed",
        "1",
    ]
    started = time.monotonic()
    night = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marks = sorted({100, experiments})
    memory: dict[int, tuple[int, int]] = {}
    first_row_at = None
    while night.poll() is None:
        rows = ledger.read_text().count("\n") - 1 if ledger.exists() else 0
        if rows >= 1 and first_row_at is None:
            first_row_at = time.monotonic()
        for mark in marks:
            # The last sample is taken just before the process ends (at N - 1 rows or more).
            if mark not in memory and rows >= min(mark, experiments - 1):
                with contextlib.suppress(FileNotFoundError):
                    memory[mark] = memory_kib(night.pid)
        time.sleep(0.2)
    elapsed = time.monotonic() - (first_row_at or started)
    return {"seconds": elapsed, "memory": memory, "returncode": night.returncode}


def time_status(task: Path, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        begun = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "harness.cli", "status", str(task), "--tag", "soak", "--json"],
            check=True,
            capture_output=True,
        )
        best = min(best, time.perf_counter() - begun)
    return best


def grow_ledger(task: Path, rows: int) -> Path:
    """A copy of the run's ledger padded with synthetic rows, to time `status` on a larger night."""
    copy = task.parent / "big"
    shutil.copytree(task, copy, ignore=shutil.ignore_patterns("worktree", "scratch", "experiments"))
    ledger = copy / ".overnight/soak/results.tsv"
    lines = ledger.read_text().splitlines()
    header, body = lines[0], lines[1:]
    padded = [header, *body]
    number = len(body)
    while len(padded) - 1 < rows:
        fields = body[1 + (number % (len(body) - 1))].split("\t")
        fields[0] = str(number)
        padded.append("\t".join(fields))
        number += 1
    ledger.write_text("\n".join(padded) + "\n")
    return copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="overnight-soak-") as tmp:
        task = make_task(Path(tmp))
        result = soak(task, args.experiments)
        if result["returncode"] != 0:
            sys.exit(f"the soak night failed with exit code {result['returncode']}")
        seconds = float(result["seconds"])  # type: ignore[arg-type]
        memory: dict[int, tuple[int, int]] = result["memory"]  # type: ignore[assignment]
        print(
            f"soak: {args.experiments} experiments in {seconds:.0f}s "
            f"= {args.experiments / seconds * 3600:.0f} experiments per hour"
        )
        for mark, (rss, hwm) in sorted(memory.items()):
            print(
                f"harness memory at {mark:>5} experiments: resident {rss / 1024:.1f} MiB, "
                f"peak {hwm / 1024:.1f} MiB"
            )
        small = time_status(task)
        big_task = grow_ledger(task, 10_000)
        big = time_status(big_task)
        print(
            f"`overnight status --json`: {small * 1000:.0f} ms at {args.experiments} rows, "
            f"{big * 1000:.0f} ms at 10,000 rows (ratio {big / small:.2f})"
        )


if __name__ == "__main__":
    main()
