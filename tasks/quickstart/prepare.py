"""Quickstart task: fit a small regression model to synthetic data.

Fixed by the human, never edited by the agent. `python prepare.py` (run once, in a container)
writes the training split to OVERNIGHT_DATA_DIR and the held-out split to OVERNIGHT_PRIVATE_DIR.
`evaluate(output_dir)` runs in a container without train.py and scores the weights train.py saved.
"""

import os

import numpy as np

METRIC = "val_loss"
DIRECTION = "minimize"
TIME_BUDGET = 10

FEATURES = 16
N_TRAIN = 4000
N_VAL = 2000


def _target(x, rng_seed=1):
    rng = np.random.default_rng(rng_seed)
    a = rng.normal(size=FEATURES) / np.sqrt(FEATURES)
    b = rng.normal(size=FEATURES) / np.sqrt(FEATURES)
    return np.sin(2.0 * x @ a) + 0.5 * (x @ b) ** 2


def make_split(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, FEATURES))
    y = _target(x) + 0.05 * rng.normal(size=n)
    return x.astype(np.float64), y.astype(np.float64)


def load_train():
    """The public training split (features, targets)."""
    with np.load(os.path.join(os.environ["OVERNIGHT_DATA_DIR"], "train.npz"), allow_pickle=False) as data:
        return data["x"], data["y"]


def features(x, projection):
    """The model's hidden layer: fixed random projection, then tanh."""
    return np.tanh(x @ projection)


def load_model(output_dir):
    """The projection and weights train.py saved, checked before any use: float64 arrays of the
    expected shapes only. A complex or float16 array would not fail in the arithmetic below; it
    would give a score that means something else (a complex one's real part can be far below any
    honest loss)."""
    projection = np.load(os.path.join(output_dir, "projection.npy"), allow_pickle=False)
    weights = np.load(os.path.join(output_dir, "weights.npy"), allow_pickle=False)
    if projection.dtype != np.float64 or weights.dtype != np.float64:
        raise ValueError(f"expected float64 arrays, not {projection.dtype} and {weights.dtype}")
    if projection.ndim != 2 or projection.shape[0] != FEATURES or weights.shape != (projection.shape[1] + 1,):
        raise ValueError(f"unexpected shapes {projection.shape} and {weights.shape}")
    return projection, weights


def evaluate(output_dir):
    """Mean squared error on the held-out split of the weights train.py saved."""
    projection, weights = load_model(output_dir)
    with np.load(os.path.join(os.environ["OVERNIGHT_PRIVATE_DIR"], "val.npz"), allow_pickle=False) as data:
        x, y = data["x"], data["y"]
    h = features(x, projection)
    prediction = h @ weights[:-1] + weights[-1]
    return {METRIC: float(np.mean((prediction - y) ** 2)), "hidden": int(projection.shape[1])}


if __name__ == "__main__":
    x, y = make_split(N_TRAIN, seed=2)
    np.savez(os.path.join(os.environ["OVERNIGHT_DATA_DIR"], "train.npz"), x=x, y=y)
    x, y = make_split(N_VAL, seed=3)
    np.savez(os.path.join(os.environ["OVERNIGHT_PRIVATE_DIR"], "val.npz"), x=x, y=y)
    print(f"wrote {N_TRAIN} training and {N_VAL} held-out rows")
