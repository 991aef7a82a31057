"""Speedup: make train.py's rolling z-score faster without changing its answers.

Fixed by the human, never edited by the agent. `python prepare.py` (run once, in a container)
writes a public sample with its expected answer to OVERNIGHT_DATA_DIR and the hidden inputs to
OVERNIGHT_PRIVATE_DIR.

`evaluate(output_dir)` never imports train.py. It calls `rolling_zscore()` through `call_train`
(a separate process, as a user that cannot read the private data) on hidden inputs: a wrong
answer on any of them makes the experiment invalid. The metric is the median wall time of
REPEATS calls on the largest input, measured here, from the call to its answer (the worker's
start-up, about a tenth of a second, included).
"""

import os
import resource
import statistics
import time

import numpy as np
from overnight_eval import call_train

METRIC = "seconds"
DIRECTION = "minimize"
TIME_BUDGET = 30

N_SAMPLE = 20_000  # the public sample
N_TIMED = 100_000  # the hidden input whose time is the metric
WINDOW = 64  # the window of the timed input
REPEATS = 5  # timed calls; the metric is their median
TOLERANCE = 1e-6  # largest allowed difference from the reference, per value


def make_signal(n, seed):
    """A sensor-like signal: a slow random walk around 1000, with noise and a few spikes."""
    rng = np.random.default_rng(seed)
    walk = 1000.0 + np.cumsum(rng.normal(0.0, 0.05, n))
    spikes = (rng.random(n) < 0.001) * rng.normal(0.0, 25.0, n)
    return walk + rng.normal(0.0, 1.0, n) + spikes


def reference(values, window):
    """The right answer, computed the slow and careful way: each window on its own."""
    from numpy.lib.stride_tricks import sliding_window_view

    windows = sliding_window_view(np.asarray(values, dtype=np.float64), window)
    spread = windows.std(axis=1, ddof=1)
    safe = np.where(spread > 0, spread, 1.0)
    return np.where(spread > 0, (windows[:, -1] - windows.mean(axis=1)) / safe, 0.0)


def load_sample():
    """(values, window, expected answer) of the public sample."""
    with np.load(os.path.join(os.environ["OVERNIGHT_DATA_DIR"], "sample.npz"), allow_pickle=False) as data:
        return data["values"], int(data["window"]), data["expected"]


def check(answer, values, window, name):
    """Raise ValueError unless `answer` is rolling_zscore(values, window) within TOLERANCE."""
    expected = reference(values, window)
    got = np.asarray(answer)
    if got.dtype.kind not in "biuf" or got.shape != expected.shape:
        raise ValueError(
            f"{name}: rolling_zscore returned {got.dtype} of shape {got.shape}; "
            f"expected floats of shape {expected.shape}"
        )
    error = np.abs(got.astype(np.float64) - expected)
    if not np.all(np.isfinite(got)) or float(error.max(initial=0.0)) > TOLERANCE:
        worst = int(np.nanargmax(np.where(np.isfinite(error), error, np.inf)))
        raise ValueError(
            f"{name}: wrong answer at index {worst}: {float(got[worst])!r}, expected "
            f"{float(expected[worst])!r} (tolerance {TOLERANCE})"
        )


def evaluate(output_dir):
    """Median seconds of rolling_zscore on the hidden input; wrong answers anywhere: invalid."""
    private = os.environ["OVERNIGHT_PRIVATE_DIR"]
    with np.load(os.path.join(private, "hidden.npz"), allow_pickle=False) as data:
        cases = [(data[f"values_{i}"], int(data[f"window_{i}"])) for i in range(int(data["count"]))]
        timed = data["timed"]
    for values, _ in [*cases, (timed, WINDOW)]:
        if values.dtype != np.float64 or values.ndim != 1:
            raise ValueError(f"hidden.npz: expected 1-D float64 inputs, got {values.dtype} {values.shape}")
    if timed.shape != (N_TIMED,):
        raise ValueError(f"hidden.npz: the timed input has shape {timed.shape}, expected ({N_TIMED},)")
    for number, (values, window) in enumerate(cases):
        check(call_train("rolling_zscore", values, window, timeout=60), values, window, f"case {number}")
    seconds, cpu = [], []
    for _ in range(REPEATS):
        used = _children_cpu()
        started = time.perf_counter()
        answer = call_train("rolling_zscore", timed, WINDOW, timeout=60)
        seconds.append(time.perf_counter() - started)
        cpu.append(_children_cpu() - used)  # the worker's own CPU time, less sensitive to load
        check(answer, timed, WINDOW, "the timed input")
    return {
        METRIC: float(statistics.median(seconds)),
        "fastest": float(min(seconds)),
        "cpu_seconds": float(statistics.median(cpu)),
    }


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    values = make_signal(N_SAMPLE, seed=1)
    np.savez(
        os.path.join(os.environ["OVERNIGHT_DATA_DIR"], "sample.npz"),
        values=values, window=np.int64(WINDOW), expected=reference(values, WINDOW),
    )
    # Other lengths and windows than the sample's, so only a general answer is right.
    cases = {"count": np.int64(3)}
    for i, (n, window, seed) in enumerate([(5_000, 7, 11), (20_000, 200, 12), (1_000, 1_000, 13)]):
        cases[f"values_{i}"] = make_signal(n, seed)
        cases[f"window_{i}"] = np.int64(window)
    cases["timed"] = make_signal(N_TIMED, seed=14)
    np.savez(os.path.join(os.environ["OVERNIGHT_PRIVATE_DIR"], "hidden.npz"), **cases)
    print(f"wrote a sample of {N_SAMPLE} values and {len(cases) - 1} hidden inputs")
