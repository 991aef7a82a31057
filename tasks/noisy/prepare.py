"""Noisy task: a small regression trained by SGD, whose score varies from run to run.

Fixed by the human, never edited by the agent. `python prepare.py` writes the training split to
OVERNIGHT_DATA_DIR and the held-out split to OVERNIGHT_PRIVATE_DIR. `evaluate(output_dir)` scores
the weights train.py saved. train.py seeds itself from os.urandom, so the same train.py gives a
slightly different val_loss every run: the noise `noise_runs` measures.
"""

import os

import numpy as np

METRIC = "val_loss"
DIRECTION = "minimize"
TIME_BUDGET = 10

N_TRAIN = 2000
N_VAL = 4000
SCALE = np.array([6.0, 1.0, 1.0, 1.0])  # x0 is large: SGD's noise is mostly along its weight
WEIGHTS = np.array([0.3, -0.5, 0.8, 0.2])
CURVE = 0.6  # the part of the target a linear model misses


def features(x):
    """The model's inputs: the four features, x0's standardised square, and a constant."""
    square = ((x[:, 0] / SCALE[0]) ** 2 - 1.0) / np.sqrt(2.0)
    return np.column_stack([x, square, np.ones(len(x))])


def make_split(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)) * SCALE
    y = features(x) @ np.array([*WEIGHTS / SCALE, CURVE, 0.1]) + 0.1 * rng.normal(size=n)
    return x, y


def load_train():
    """The public training split (features, targets)."""
    path = os.path.join(os.environ["OVERNIGHT_DATA_DIR"], "train.npz")
    with np.load(path, allow_pickle=False) as data:
        return data["x"], data["y"]


def evaluate(output_dir):
    """Mean squared error on the held-out split of the weights train.py saved."""
    weights = np.load(os.path.join(output_dir, "weights.npy"), allow_pickle=False)
    if weights.dtype != np.float64 or weights.shape != (6,):
        raise ValueError(f"weights must be float64 of shape (6,), not {weights.dtype} {weights.shape}")
    path = os.path.join(os.environ["OVERNIGHT_PRIVATE_DIR"], "val.npz")
    with np.load(path, allow_pickle=False) as data:
        x, y = data["x"], data["y"]
    return {METRIC: float(np.mean((features(x) @ weights - y) ** 2))}


if __name__ == "__main__":
    x, y = make_split(N_TRAIN, seed=2)
    np.savez(os.path.join(os.environ["OVERNIGHT_DATA_DIR"], "train.npz"), x=x, y=y)
    x, y = make_split(N_VAL, seed=3)
    np.savez(os.path.join(os.environ["OVERNIGHT_PRIVATE_DIR"], "val.npz"), x=x, y=y)
    print(f"wrote {N_TRAIN} training and {N_VAL} held-out rows")
