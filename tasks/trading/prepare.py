"""Trading: evolve the parameters of an hourly trading strategy; scored by net Sharpe on later prices.

Fixed by the human, never edited by the agent. `python prepare.py` (run once, in a container)
draws one seeded synthetic market of 15,000 hourly bars with regimes (trends up and down, mean
reversion, volatility clusters), writes the first 10,000 to OVERNIGHT_DATA_DIR and keeps the later
5,000 in OVERNIGHT_PRIVATE_DIR, with the secret bars at which the evaluator checks causality.

`evaluate(output_dir)` never imports train.py. It hands prices to train.py's `positions()` through
`call_train` (a separate process, as a user that cannot read the private data): first shortened
series ending at the secret bars, then the whole one. A strategy whose position at a bar changes
when later bars are removed looks ahead, and the experiment is invalid; so is a call that leaves
anything behind for the next one (files in the temporary folder, System V IPC objects).
"""

import contextlib
import math
import os
import secrets
import tempfile

import numpy as np
from overnight_eval import call_train

METRIC = "sharpe"
DIRECTION = "maximize"
TIME_BUDGET = 30

SEED = 41
N_PUBLIC = 10_000  # hourly bars in the public history (OVERNIGHT_DATA_DIR/prices.npy)
N_HELD_OUT = 5_000  # the later bars the strategy is scored on (private)
WARMUP = 500  # public bars handed to positions() before the held-out ones, for its indicators
CHECKS = 8  # shortened series per evaluation (causality)
FEE = 0.0003  # per unit of position traded
SLIPPAGE = 0.0002  # likewise: the cost of crossing the spread
BARS_PER_YEAR = 24 * 365  # the market trades around the clock


def make_market(n, seed=SEED):
    """Prices of n hourly bars: a Markov chain of regimes with GARCH-like volatility."""
    rng = np.random.default_rng(seed)
    regime = np.empty(n, dtype=np.int64)  # 0 trend up, 1 trend down, 2 mean reversion, 3 volatile
    start = 0
    while start < n:
        length = int(rng.integers(60, 240))
        regime[start : start + length] = rng.integers(4)
        start += length
    shocks = rng.standard_normal(n)
    log_price = np.empty(n)
    log_price[0] = math.log(100.0)
    variance, shock, anchor = 0.006**2, 0.0, log_price[0]
    for t in range(1, n):
        k = regime[t]
        base = 0.02 if k == 3 else 0.006
        variance = 0.05 * base**2 + 0.10 * shock**2 + 0.85 * variance
        drift = (0.001, -0.001, -0.1 * (log_price[t - 1] - anchor), -0.3 * shock)[k]
        if k != 2:
            anchor = log_price[t - 1]
        shock = math.sqrt(variance) * shocks[t]
        log_price[t] = log_price[t - 1] + drift + shock
    return np.exp(log_price)


def load_prices():
    """The public history: N_PUBLIC hourly closing prices, oldest first."""
    return _load(os.path.join(os.environ["OVERNIGHT_DATA_DIR"], "prices.npy"), (N_PUBLIC,))


def backtest(prices, positions, start=0):
    """Net performance of holding positions[t] from the close of bar t to the close of bar t+1.

    Trading costs FEE + SLIPPAGE per unit of position changed. Returns counted from bar `start`.
    """
    prices = np.asarray(prices, dtype=np.float64)
    positions = np.asarray(positions, dtype=np.float64)
    returns = prices[1:] / prices[:-1] - 1.0
    held = positions[:-1]
    traded = np.abs(np.diff(positions, prepend=0.0))[:-1]
    net = (held * returns - (FEE + SLIPPAGE) * traded)[start:]
    deviation = float(net.std())
    sharpe = 0.0 if deviation == 0.0 else float(net.mean()) / deviation * math.sqrt(BARS_PER_YEAR)
    equity = np.cumsum(np.log1p(np.maximum(net, -0.999999)))
    peak = np.maximum.accumulate(np.concatenate([[0.0], equity]))[1:]
    drawdown = float(np.max(peak - equity)) if len(equity) else 0.0
    return {
        "sharpe": sharpe,
        "total_return": float(math.expm1(equity[-1])) if len(equity) else 0.0,
        "max_drawdown": float(-math.expm1(-drawdown)),
        "turnover_per_year": float(traded[start:].sum() / max(len(net), 1) * BARS_PER_YEAR),
        "exposure": float(np.abs(held[start:]).mean()) if len(net) else 0.0,
    }


def evaluate(output_dir):
    """Net annualised Sharpe of train.py's positions() on the held-out bars."""
    private = os.environ["OVERNIGHT_PRIVATE_DIR"]
    held_out = _load(os.path.join(private, "held_out.npy"), (N_HELD_OUT,))
    cuts = _load(os.path.join(private, "cuts.npy"), (CHECKS,), np.int64)
    prices = np.concatenate([load_prices()[-WARMUP:], held_out])
    before = _leftovers()
    shortened = {}
    for cut in sorted(int(c) for c in cuts):  # shortest first, the whole series last
        shortened[cut] = _positions(prices[:cut], before)
    positions = _positions(prices, before)
    for cut, early in shortened.items():
        changed = np.flatnonzero(np.abs(positions[:cut] - early) > 1e-9)
        if len(changed):
            raise ValueError(
                f"positions() looks ahead: its position at bar {int(changed[0])} changed when the "
                f"bars from {cut} on were removed; use only prices up to each bar"
            )
    result = backtest(prices, positions, start=WARMUP - 1)
    for name, value in result.items():
        if not (isinstance(value, float) and math.isfinite(value)):
            raise ValueError(f"the backtest gave a non-finite {name}: {value!r}")
    # Four decimals: a smaller difference is floating-point rounding (scaling every position
    # by the same factor leaves the Sharpe ratio as it was), never a better strategy.
    return {name: round(value, 4) for name, value in result.items()}


def _positions(prices, before):
    """train.positions(prices), checked: one finite position in [-1, 1] per bar."""
    answer = np.asarray(call_train("positions", prices, timeout=60))
    if answer.dtype.kind not in "biuf":
        raise ValueError(f"positions() returned {answer.dtype} values; return numbers")
    if answer.shape != prices.shape:
        raise ValueError(f"positions() returned shape {answer.shape}; expected {prices.shape}")
    answer = answer.astype(np.float64)
    if not np.all(np.isfinite(answer)) or np.max(np.abs(answer), initial=0.0) > 1.0 + 1e-9:
        raise ValueError("positions() must return finite positions between -1 and 1")
    left = _leftovers() - before
    if left:
        raise ValueError(
            f"positions() left {sorted(left)[:3]} behind; it must keep no state between calls"
        )
    return answer


def _leftovers():
    """What one call into train.py could leave for the next to read."""
    found = set()
    folders = {tempfile.gettempdir()}
    if tempfile.gettempdir() == "/tmp":  # in a container: its own /dev/shm too
        folders.add("/dev/shm")
    for folder in folders:
        with contextlib.suppress(OSError):
            found |= {entry.path for entry in os.scandir(folder)}
    for kind in ("shm", "msg", "sem"):
        with contextlib.suppress(OSError), open(f"/proc/sysvipc/{kind}") as handle:
            found |= {f"System V {kind} {line.split()[1]}" for line in handle.readlines()[1:]}
    return found


def _load(path, shape, dtype=np.float64):
    array = np.load(path, allow_pickle=False)
    if array.dtype != dtype or array.shape != shape:
        raise ValueError(f"{path}: expected {np.dtype(dtype)} of shape {shape}, got {array.dtype} {array.shape}")
    return array


if __name__ == "__main__":
    prices = make_market(N_PUBLIC + N_HELD_OUT)
    np.save(os.path.join(os.environ["OVERNIGHT_DATA_DIR"], "prices.npy"), prices[:N_PUBLIC])
    private = os.environ["OVERNIGHT_PRIVATE_DIR"]
    np.save(os.path.join(private, "held_out.npy"), prices[N_PUBLIC:])
    # Secret, and drawn anew for each setup: a strategy cannot know where it is checked.
    bars = range(WARMUP + 50, WARMUP + N_HELD_OUT)
    cuts = np.array(sorted(secrets.SystemRandom().sample(bars, CHECKS)), dtype=np.int64)
    np.save(os.path.join(private, "cuts.npy"), cuts)
    print(f"wrote {N_PUBLIC} public and {N_HELD_OUT} held-out hourly bars")
