"""Train a character-level GPT on the training text for TIME_BUDGET seconds, on the CPU.

The model is prepare.GPT; what it learns is scored by prepare.evaluate on held-out text this
program cannot read. It writes to OVERNIGHT_OUTPUT_DIR the model's state dict (model.pt, float32)
and its GPTConfig (config.json), which is all the evaluator reads.
"""

import json
import math
import os
import time
from dataclasses import asdict

from prepare import GPT, THREADS, TIME_BUDGET, GPTConfig, encode, load_train_text

import torch  # after prepare, which sets how torch's threads wait

# The model (every value must stay within prepare.LIMITS)
BLOCK_SIZE = 64  # characters of context
N_LAYER = 2
N_HEAD = 4
N_EMBD = 64

# The optimisation
BATCH_SIZE = 32
LEARNING_RATE = 3e-4
WEIGHT_DECAY = 0.1
BETAS = (0.9, 0.95)
WARMUP_STEPS = 20
FINAL_LR_FRACTION = 0.1  # the learning rate decays to this fraction at the end of the budget
GRAD_CLIP = 1.0
SEED = 1337


def learning_rate(step, progress):
    """Linear warmup, then cosine decay over the time budget (progress runs from 0 to 1)."""
    if step < WARMUP_STEPS:
        return LEARNING_RATE * (step + 1) / WARMUP_STEPS
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return LEARNING_RATE * (FINAL_LR_FRACTION + (1.0 - FINAL_LR_FRACTION) * cosine)


def batch(data, generator):
    starts = torch.randint(len(data) - BLOCK_SIZE - 1, (BATCH_SIZE,), generator=generator)
    x = torch.stack([data[s : s + BLOCK_SIZE] for s in starts])
    y = torch.stack([data[s + 1 : s + BLOCK_SIZE + 1] for s in starts])
    return x, y


def main():
    torch.set_num_threads(THREADS)
    torch.manual_seed(SEED)
    generator = torch.Generator().manual_seed(SEED)
    data = encode(load_train_text())
    config = GPTConfig(block_size=BLOCK_SIZE, n_layer=N_LAYER, n_head=N_HEAD, n_embd=N_EMBD)
    model = GPT(config)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=LEARNING_RATE, betas=BETAS, weight_decay=WEIGHT_DECAY
    )
    parameters = sum(p.numel() for p in model.parameters())
    print(f"{len(data):,} training characters, {parameters:,} parameters")

    started = time.perf_counter()
    step, smoothed = 0, None
    while (elapsed := time.perf_counter() - started) < TIME_BUDGET:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, elapsed / TIME_BUDGET)
        x, y = batch(data, generator)
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()
        smoothed = float(loss) if smoothed is None else 0.95 * smoothed + 0.05 * float(loss)
        if step % 50 == 0:
            print(f"step {step:5d}  loss {float(loss):.4f}  {elapsed:5.1f}s", flush=True)
        step += 1

    output = os.environ["OVERNIGHT_OUTPUT_DIR"]
    torch.save(model.state_dict(), os.path.join(output, "model.pt"))
    with open(os.path.join(output, "config.json"), "w") as f:
        json.dump(asdict(config), f)
    print("---")
    print(f"train_bpb:        {smoothed / math.log(2):.4f}")
    print(f"training_seconds: {time.perf_counter() - started:.1f}")
    print(f"num_steps:        {step}")
    print(f"num_params:       {parameters}")


if __name__ == "__main__":
    main()
