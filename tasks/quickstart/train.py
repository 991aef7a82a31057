"""Train a one-hidden-layer network (random tanh features, trained linear head) with minibatch SGD.

The agent may change anything in this file. prepare.py scores the saved weights on held-out data.
"""

import os
import time

import numpy as np

import prepare

HIDDEN = 32
LEARNING_RATE = 0.01
EPOCHS = 4
BATCH_SIZE = 128
WEIGHT_DECAY = 0.01
INIT_SCALE = 0.5

started = time.time()
x, y = prepare.load_train()
rng = np.random.default_rng(0)
projection = rng.normal(size=(x.shape[1], HIDDEN)) * INIT_SCALE / np.sqrt(x.shape[1])
h = prepare.features(x, projection)
h = np.hstack([h, np.ones((len(h), 1))])
weights = np.zeros(h.shape[1])

for epoch in range(EPOCHS):
    order = rng.permutation(len(h))
    for start in range(0, len(h), BATCH_SIZE):
        batch = order[start : start + BATCH_SIZE]
        error = h[batch] @ weights - y[batch]
        gradient = h[batch].T @ error / len(batch) + WEIGHT_DECAY * weights
        weights -= LEARNING_RATE * gradient
    loss = float(np.mean((h @ weights - y) ** 2))
    print(f"epoch {epoch + 1}/{EPOCHS} train_loss {loss:.4f}")

output = os.environ["OVERNIGHT_OUTPUT_DIR"]
np.save(os.path.join(output, "projection.npy"), projection)
np.save(os.path.join(output, "weights.npy"), weights)
print(f"trained in {time.time() - started:.2f}s")
