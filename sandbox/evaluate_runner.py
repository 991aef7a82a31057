"""Runs `prepare.evaluate(output_dir)` inside the evaluator container and writes its result.

This file is mounted read-only into a container that holds no agent code. It is started with
`python3 -I`, so nothing from the environment or the working directory shapes its imports.
The result goes to a file only this container can write; nothing the training run printed counts.
"""

import json
import math
import os
import sys
import traceback

PREPARE_DIR, OUTPUT_DIR, RESULT_FILE = sys.argv[1], sys.argv[2], sys.argv[3]
METRIC = sys.argv[4]


def as_number(value):
    if isinstance(value, bool):
        raise TypeError(f"a bool is not a metric: {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"not a number: {type(value).__name__} {value!r:.80}") from None


def normalise(value):
    if isinstance(value, dict):
        if METRIC not in value:
            raise KeyError(f"evaluate() returned a dict without the metric {METRIC!r}")
        metrics = {}
        for key, item in value.items():
            try:
                metrics[str(key)] = as_number(item)
            except TypeError:
                if key == METRIC:
                    raise
        return metrics
    return {METRIC: as_number(value)}


def write(payload):
    with open(RESULT_FILE, "w") as handle:
        json.dump(payload, handle)


def main():
    sys.path.insert(0, PREPARE_DIR)
    try:
        import prepare

        metrics = normalise(prepare.evaluate(OUTPUT_DIR))
    except BaseException as err:
        traceback.print_exc()
        write({"error": f"{type(err).__name__}: {err}"[:2000]})
        return 1
    finite = {k: v for k, v in metrics.items() if math.isfinite(v)}
    write({"metrics": {k: (v if k in finite else repr(v)) for k, v in metrics.items()}})
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
