"""The worst case of the nearest-lines hint for a `str_replace` that matches nothing: before and after.

Before: difflib's ratio of old_str against every window of train.py as long as old_str (the
cost grows with the product of the two sizes). After: `harness.edit_hint.nearest`, a few anchor
lines looked up and a capped number of close comparisons. For each case it times the whole
hint; where the old one would take too long it times a sample of windows and multiplies by
their number (marked `~`). Cases: the common one (a 300-line train.py, a 5-line old_str with a
typo), then larger ones up to the attack (a 1 MB train.py, 1,000- and 20,000-line old_str).

Usage: .venv/bin/python bench/edit_hint.py
Nothing is asserted and nothing leaves this machine; it prints a table.
"""

from __future__ import annotations

import difflib
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.edit_hint import nearest

SAMPLE_WINDOWS = 20  # windows timed when the old hint would take longer than a few seconds


def train_lines(count: int, short: bool = False) -> list[str]:
    rng = random.Random(count)
    if short:  # about 22 bytes a line: a megabyte is 45,000 of them
        return [f"v_{i} = compute({rng.randint(0, 999)})" for i in range(count)]
    return [
        f"value_{i} = compute(alpha_{i % 97}, beta={i * 3 % 1000}, gamma={rng.random():.6f})"
        for i in range(count)
    ]


def old_ratio_per_window(lines: list[str], old: str, windows: int) -> float:
    """Seconds the old hint spent on one window, from the first `windows` of them."""
    width = max(1, len(old.splitlines()))
    started = time.perf_counter()
    for at in range(windows):
        difflib.SequenceMatcher(None, "\n".join(lines[at : at + width]), old).ratio()
    return (time.perf_counter() - started) / windows


def before(lines: list[str], old: str) -> tuple[float, bool]:
    """Seconds of the old hint, and whether that is an estimate from a sample of windows."""
    windows = max(1, len(lines) - len(old.splitlines()) + 1)
    sample = min(windows, SAMPLE_WINDOWS)
    estimate = old_ratio_per_window(lines, old, sample) * windows
    if windows == sample or estimate > 10.0:
        return estimate, windows > sample
    return old_ratio_per_window(lines, old, windows) * windows, False


def after(source: str, old: str) -> float:
    started = time.perf_counter()
    nearest(source, old, "x = 1")
    return time.perf_counter() - started


def main() -> None:
    cases = [
        ("common: 300 lines, 5-line old_str with a typo", 300, False, 5),
        ("2,000 lines, 50-line old_str", 2_000, False, 50),
        ("5,000 lines, 200-line old_str", 5_000, False, 200),
        ("1 MB (45,000 lines), 1,000-line old_str", 45_000, True, 1_000),
        ("1 MB (45,000 lines), 20,000-line old_str", 45_000, True, 20_000),
    ]
    print(f"{'case':<48} {'before':>12} {'after':>9} {'ratio':>12}")
    for name, count, short, width in cases:
        lines = train_lines(count, short)
        source = "\n".join(lines) + "\n"
        # Nearly a part of the file (one character changed per line), so nothing matches.
        start = count // 3
        old = "\n".join(line.replace("compute", "compote") for line in lines[start : start + width])
        old_s, estimated = before(lines, old)
        new_s = after(source, old)
        mark = "~" if estimated else ""
        print(
            f"{name:<48} {mark + _seconds(old_s):>12} {_seconds(new_s):>9} "
            f"{mark + f'{old_s / new_s:,.0f}x':>12}"
        )


def _seconds(value: float) -> str:
    if value >= 86_400:
        return f"{value / 86_400:.1f}d"
    if value >= 3_600:
        return f"{value / 3_600:.1f}h"
    return f"{value:.3f}s"


if __name__ == "__main__":
    main()
