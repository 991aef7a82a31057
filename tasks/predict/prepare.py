"""Example task for `call_train`: the evaluator calls train.py's `predict()` on held-out inputs.

Fixed by the human, never edited by the agent. `python prepare.py` (run once, in a container)
writes the training split to OVERNIGHT_DATA_DIR and the held-out split to OVERNIGHT_PRIVATE_DIR.
`evaluate(output_dir)` never imports train.py: it hands the held-out inputs (not the targets) to
`predict()` through `call_train`, which runs train.py in a separate process as another user that
cannot read the private data, and scores the answer here.
"""

import os

import numpy as np
from overnight_eval import call_train

METRIC = "val_mse"
DIRECTION = "minimize"
TIME_BUDGET = 10

N_TRAIN = 2000
N_VAL = 1000


def make_split(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2.0, 2.0, size=(n, 2))
    y = np.sin(1.5 * x[:, 0]) * np.cos(x[:, 1]) + 0.3 * x[:, 1] + 0.05 * rng.normal(size=n)
    return x, y


def load_train():
    """The public training split (inputs, targets)."""
    path = os.path.join(os.environ["OVERNIGHT_DATA_DIR"], "train.npz")
    with np.load(path, allow_pickle=False) as data:
        return data["x"], data["y"]


def evaluate(output_dir):
    """Mean squared error of train.py's predict() on the held-out inputs.

    A failed call (predict() raised, crashed or timed out) raises TrainCallError, which makes the
    experiment invalid. The answer is checked before use: a float64 array with one prediction per
    input, nothing else (a complex or object array would score as something else)."""
    path = os.path.join(os.environ["OVERNIGHT_PRIVATE_DIR"], "val.npz")
    with np.load(path, allow_pickle=False) as data:
        x, y = data["x"], data["y"]
    prediction = call_train("predict", x, timeout=60)
    if not isinstance(prediction, np.ndarray) or prediction.dtype != np.float64:
        raise ValueError(f"predict() must return a float64 array, not {_kind(prediction)}")
    if prediction.shape != y.shape:
        raise ValueError(f"predict() returned shape {prediction.shape}, expected {y.shape}")
    return {METRIC: float(np.mean((prediction - y) ** 2))}


def _kind(value):
    return f"an array of {value.dtype}" if isinstance(value, np.ndarray) else type(value).__name__


if __name__ == "__main__":
    x, y = make_split(N_TRAIN, seed=2)
    np.savez(os.path.join(os.environ["OVERNIGHT_DATA_DIR"], "train.npz"), x=x, y=y)
    x, y = make_split(N_VAL, seed=3)
    np.savez(os.path.join(os.environ["OVERNIGHT_PRIVATE_DIR"], "val.npz"), x=x, y=y)
    print(f"wrote {N_TRAIN} training and {N_VAL} held-out rows")
