"""Rolling z-score of a sensor signal: how unusual each reading is against the window before it.

The evaluator calls rolling_zscore() through call_train on inputs it keeps to itself and checks
every answer, so it must stay correct (within 1e-6 of the reference) for any length and window.
Running this file checks it on the public sample and prints how long it took.
"""

import math

REFRESH = 1  # recompute the window's sums from scratch every REFRESH steps, against rounding drift


def rolling_zscore(values, window):
    """For each full window of `values`, (last - mean) / sample std of that window (0 if flat)."""
    xs = [float(v) for v in values]
    out = []
    total = squares = 0.0
    for end in range(window, len(xs) + 1):
        start = end - window
        if start % REFRESH == 0:
            total = math.fsum(xs[start:end])
            squares = math.fsum(x * x for x in xs[start:end])
        else:
            new, old = xs[end - 1], xs[start - 1]
            total += new - old
            squares += new * new - old * old
        mean = total / window
        variance = (squares - total * mean) / (window - 1)
        out.append((xs[end - 1] - mean) / math.sqrt(variance) if variance > 0 else 0.0)
    return out


if __name__ == "__main__":
    import time

    import prepare

    values, window, expected = prepare.load_sample()
    started = time.perf_counter()
    answer = rolling_zscore(values, window)
    elapsed = time.perf_counter() - started
    prepare.check(answer, values, window, "the public sample")
    print(f"correct on the public sample ({len(values)} values, window {window}) in {elapsed:.3f}s")
