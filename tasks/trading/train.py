"""An hourly strategy: trend following when the market trends, mean reversion when it does not.

The evaluator calls positions(prices) through call_train on prices it keeps to itself, so
positions() must use only the prices it is given, and only those up to each bar. Running this
file backtests the strategy on the public history and prints how it did there.

The parameters are the ones a nightly evolution mutates: indicator lengths, entry thresholds, the
regime filter, stop loss, take profit and position size.
"""

import math

import numpy as np

RSI_PERIOD = 14  # bars of the relative strength index
RSI_OVERSOLD = 30.0  # below: buy (in a range-bound market)
RSI_OVERBOUGHT = 70.0  # above: sell short
EMA_FAST = 12  # bars of the fast and slow moving averages (trend direction)
EMA_SLOW = 26
REGIME_WINDOW = 50  # bars over which the efficiency ratio tells a trend from a range
REGIME_THRESHOLD = 0.3  # efficiency ratio above which the market counts as trending
VOL_WINDOW = 24  # bars of realised volatility
VOL_LIMIT = 0.03  # regime filter: stand aside when hourly volatility is above this
VOL_TARGET = 0.006  # positions shrink when volatility is above this
POSITION_SIZE = 0.5  # fraction of capital per position
STOP_LOSS = 0.03  # close a position that lost this fraction since entry
TAKE_PROFIT = 0.06  # close a position that gained this fraction since entry


def ema(values, span):
    alpha = 2.0 / (span + 1.0)
    out = np.empty_like(values)
    out[0] = values[0]
    for t in range(1, len(values)):
        out[t] = alpha * values[t] + (1.0 - alpha) * out[t - 1]
    return out


def rsi(prices, period):
    change = np.diff(prices, prepend=prices[0])
    gain, loss = np.maximum(change, 0.0), np.maximum(-change, 0.0)
    alpha = 1.0 / period
    up, down = np.zeros_like(prices), np.zeros_like(prices)
    for t in range(1, len(prices)):
        up[t] = (1.0 - alpha) * up[t - 1] + alpha * gain[t]
        down[t] = (1.0 - alpha) * down[t - 1] + alpha * loss[t]
    return 100.0 - 100.0 / (1.0 + up / np.maximum(down, 1e-12))


def efficiency(prices, window):
    """|net move| / path length over the last `window` bars: near 1 in a trend, near 0 in a range."""
    path = np.concatenate([[0.0], np.cumsum(np.abs(np.diff(prices)))])
    out = np.zeros_like(prices)
    for t in range(window, len(prices)):
        travelled = path[t] - path[t - window]
        out[t] = abs(prices[t] - prices[t - window]) / travelled if travelled > 0 else 0.0
    return out


def volatility(prices, window):
    squared = np.concatenate([[0.0], np.cumsum(np.diff(np.log(prices)) ** 2)])
    out = np.full(len(prices), np.inf)  # unknown until there is a full window: stand aside
    for t in range(window, len(prices)):
        out[t] = math.sqrt((squared[t] - squared[t - window]) / window)
    return out


def positions(prices):
    """The position to hold from the close of each bar to the next, in [-1, 1]."""
    prices = np.asarray(prices, dtype=np.float64)
    fast, slow = ema(prices, EMA_FAST), ema(prices, EMA_SLOW)
    strength = rsi(prices, RSI_PERIOD)
    trend = efficiency(prices, REGIME_WINDOW)
    vol = volatility(prices, VOL_WINDOW)
    out = np.zeros(len(prices))
    side, entry, stopped = 0.0, 0.0, 0.0
    for t in range(len(prices)):
        if vol[t] > VOL_LIMIT:
            want = 0.0
        elif trend[t] >= REGIME_THRESHOLD:
            want = 1.0 if fast[t] > slow[t] else -1.0
        elif strength[t] < RSI_OVERSOLD:
            want = 1.0
        elif strength[t] > RSI_OVERBOUGHT:
            want = -1.0
        elif (side > 0 and strength[t] < 50) or (side < 0 and strength[t] > 50):
            want = side  # hold a mean-reversion trade until the RSI is back to the middle
        else:
            want = 0.0
        if want != stopped:
            stopped = 0.0  # the signal moved on since the last stop: trade again
        if want == stopped:
            want = 0.0
        if want != side:
            side, entry = want, prices[t]
        elif side != 0.0:
            gain = (prices[t] / entry - 1.0) * side
            if gain <= -STOP_LOSS or gain >= TAKE_PROFIT:
                side, stopped = 0.0, side
        size = POSITION_SIZE * min(1.0, VOL_TARGET / vol[t]) if math.isfinite(vol[t]) else 0.0
        out[t] = side * size
    return out


if __name__ == "__main__":
    import prepare

    history = prepare.load_prices()
    result = prepare.backtest(history, positions(history), start=prepare.WARMUP - 1)
    print("public history (in sample):")
    for name, value in result.items():
        print(f"  {name}: {value:.4f}")
