"""Fit a linear model with minibatch SGD, seeded afresh every run (so its score is noisy).

The agent may change anything in this file. prepare.py scores the saved weights on held-out data.
"""

import os

import numpy as np

import prepare

USE_SQUARE = False  # fit x0's square too
LEARNING_RATE = 0.005
EPOCHS = 8
BATCH_SIZE = 16

x, y = prepare.load_train()
h = prepare.features(x)
if not USE_SQUARE:
    h[:, 4] = 0.0
rng = np.random.default_rng(int.from_bytes(os.urandom(8), "little"))
weights = rng.normal(size=h.shape[1]) * 0.1
for epoch in range(EPOCHS):
    order = rng.permutation(len(h))
    for start in range(0, len(h), BATCH_SIZE):
        batch = order[start : start + BATCH_SIZE]
        error = h[batch] @ weights - y[batch]
        weights -= LEARNING_RATE * h[batch].T @ error / len(batch)
if not USE_SQUARE:
    weights[4] = 0.0
print(f"train_loss {float(np.mean((h @ weights - y) ** 2)):.5f}")
np.save(os.path.join(os.environ["OVERNIGHT_OUTPUT_DIR"], "weights.npy"), weights)
