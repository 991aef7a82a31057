"""Sleeping task: a training run that waits a fixed time, scored on a fixed bowl.

A benchmark task (bench/parallel.py): a run costs wall time but almost no CPU or memory, so the
number of experiments running at once is what it measures, not the machine's cores. There is
nothing to prepare. `evaluate(output_dir)` reads the settings train.py saved and returns their
distance from a fixed optimum, a pure function of them (the same train.py always scores the same).
"""

import json
import math
import os

METRIC = "loss"
DIRECTION = "minimize"
TIME_BUDGET = 60
SLEEP_SECONDS = 3.0  # what one training run waits; bench/parallel.py --sleep rewrites it

# The optimum of each setting, and whether it is compared on a log scale.
OPTIMUM = {"learning_rate": (0.03, True), "momentum": (0.9, False), "width": (48, True)}


def load_settings(output_dir):
    """The settings train.py saved, checked before any use: finite real numbers, nothing else."""
    with open(os.path.join(output_dir, "settings.json"), encoding="utf-8") as handle:
        settings = json.load(handle)
    if not isinstance(settings, dict) or set(settings) != set(OPTIMUM):
        raise ValueError(f"settings.json must hold exactly {sorted(OPTIMUM)}")
    for name, value in settings.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number")
    return settings


def evaluate(output_dir):
    settings = load_settings(output_dir)
    loss = 0.0
    for name, (best, log_scale) in OPTIMUM.items():
        value = settings[name]
        if log_scale:
            loss += math.log(value / best) ** 2 if value > 0 else 100.0
        else:
            loss += (value - best) ** 2
    return {METRIC: loss}


if __name__ == "__main__":
    print("nothing to prepare")
