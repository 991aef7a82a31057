"""Tiny GPT: a character-level transformer trained for a minute on a CPU, scored by val_bpb.

Fixed by the human, never edited by the agent. `python prepare.py` (run once, in a container)
cuts shakespeare.txt into segments, writes nine in ten to OVERNIGHT_DATA_DIR/train.txt, keeps
the tenth in OVERNIGHT_PRIVATE_DIR/val.txt, and removes shakespeare.txt from the folder the
training sees, so train.py can never read the held-out text.

train.py trains `GPT` (defined here) and writes to OVERNIGHT_OUTPUT_DIR the model's state dict
(`torch.save(model.state_dict(), "model.pt")`) and its `GPTConfig` as `config.json`.
`evaluate(output_dir)` never imports train.py: it checks the config, builds its own GPT from it,
checks that every tensor in model.pt has the name, dtype and shape that GPT expects before any
use (torch.load with weights_only=True, so nothing in the file can run), and returns the bits
per character (= per byte: the text is ASCII) of the model on the held-out text.
"""

import json
import math
import os
from dataclasses import dataclass, fields

# Threads that wait for work sleep instead of spinning: on 2 busy cores, spinning ones made each
# step ten times slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
from torch import nn
from torch.nn import functional as F

METRIC = "val_bpb"
DIRECTION = "minimize"
TIME_BUDGET = 60  # seconds of training; train.py stops its loop when they are used
THREADS = 2  # the container's CPU cores

CORPUS = "shakespeare.txt"
VOCAB = "\n" + "".join(chr(c) for c in range(32, 127))  # newline and printable ASCII
SEGMENT = 4096  # characters per segment of the split; every tenth is held out
HELD_OUT_EVERY = 10
MAX_PARAMETERS = 20_000_000  # larger models are refused (the evaluator has 2 cores too)
LIMITS = {"block_size": (8, 1024), "n_layer": (1, 16), "n_head": (1, 16), "n_embd": (8, 1024)}
EVAL_BATCH = 16  # windows per forward pass in evaluate()


@dataclass(frozen=True)
class GPTConfig:
    block_size: int = 128  # characters of context
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    vocab_size: int = len(VOCAB)


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        mask = torch.tril(torch.ones(config.block_size, config.block_size, dtype=torch.bool))
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x):
        batch, length, width = x.shape
        q, k, v = self.qkv(x).split(width, dim=2)
        q, k, v = (t.view(batch, length, self.n_head, -1).transpose(1, 2) for t in (q, k, v))
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))
        scores = scores.masked_fill(~self.mask[:length, :length], float("-inf"))
        y = F.softmax(scores, dim=-1) @ v
        return self.proj(y.transpose(1, 2).contiguous().view(batch, length, width))


class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(config.n_embd, 4 * config.n_embd),
            nn.GELU(),
            nn.Linear(4 * config.n_embd, config.n_embd),
        )

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """A GPT-2-shaped decoder over characters: token and position embeddings, pre-norm blocks."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)

    def forward(self, idx, targets=None):
        """Logits for each position; with targets, also the mean cross-entropy in nats."""
        positions = torch.arange(idx.size(1), device=idx.device)
        x = self.wte(idx) + self.wpe(positions)
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln_f(x))
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def encode(text):
    """Characters to ids in VOCAB; ValueError on any other character."""
    index = {c: i for i, c in enumerate(VOCAB)}
    try:
        return torch.tensor([index[c] for c in text], dtype=torch.long)
    except KeyError as err:
        raise ValueError(f"character {err.args[0]!r} is not in the vocabulary") from None


def decode(ids):
    return "".join(VOCAB[int(i)] for i in ids)


def load_train_text():
    """The training text: nine in ten segments of the corpus, in order."""
    with open(os.path.join(os.environ["OVERNIGHT_DATA_DIR"], "train.txt"), encoding="ascii") as f:
        return f.read()


def check_config(raw):
    """The GPTConfig that config.json describes; ValueError unless it is one this file can build."""
    names = {f.name for f in fields(GPTConfig)}
    if not isinstance(raw, dict) or set(raw) != names:
        got = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise ValueError(f"config.json must have exactly the keys {sorted(names)}, not {got}")
    for name, value in raw.items():
        if type(value) is not int:
            raise ValueError(f"config.json: {name} must be an integer, not {value!r}")
    config = GPTConfig(**raw)
    if config.vocab_size != len(VOCAB):
        raise ValueError(f"config.json: vocab_size must be {len(VOCAB)}, not {config.vocab_size}")
    for name, (low, high) in LIMITS.items():
        if not low <= getattr(config, name) <= high:
            raise ValueError(f"config.json: {name} must be in [{low}, {high}]")
    if config.n_embd % config.n_head:
        raise ValueError("config.json: n_embd must be a multiple of n_head")
    return config


def load_model(output_dir):
    """The GPT that train.py left in output_dir, every tensor checked before it is used."""
    with open(os.path.join(output_dir, "config.json"), encoding="utf-8") as f:
        config = check_config(json.load(f))
    model = GPT(config)
    expected = model.state_dict()
    count = sum(t.numel() for t in expected.values())
    if count > MAX_PARAMETERS:
        raise ValueError(f"the model has {count:,} parameters; at most {MAX_PARAMETERS:,}")
    state = torch.load(os.path.join(output_dir, "model.pt"), map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or set(state) != set(expected):
        got = sorted(state)[:5] if isinstance(state, dict) else type(state).__name__
        raise ValueError(
            f"model.pt must be GPT's state_dict with its {len(expected)} keys; got {got}"
        )
    for name, want in expected.items():
        tensor = state[name]
        if type(tensor) is not torch.Tensor or tensor.layout != torch.strided:
            raise ValueError(f"model.pt: {name} is a {type(tensor).__name__}, not a dense tensor")
        if tensor.dtype != torch.float32 or tensor.shape != want.shape:
            raise ValueError(
                f"model.pt: {name} must be float32 of shape {tuple(want.shape)}, not "
                f"{tensor.dtype} {tuple(tensor.shape)}"
            )
        if not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"model.pt: {name} holds NaN or infinite values")
    model.load_state_dict(state)
    return model.eval()


@torch.no_grad()
def bits_per_char(model, ids):
    """Mean bits per character of ids[1:], in windows of block_size that each start afresh."""
    size = model.config.block_size
    starts = range(0, len(ids) - 1, size)
    full = [s for s in starts if s + size < len(ids)]
    batches = [full[i : i + EVAL_BATCH] for i in range(0, len(full), EVAL_BATCH)]
    batches += [[s] for s in starts if s + size >= len(ids)]  # the shorter last window
    total, count = 0.0, 0
    for batch in batches:
        n = min(size, len(ids) - 1 - batch[0])
        x = torch.stack([ids[s : s + n] for s in batch])
        y = torch.stack([ids[s + 1 : s + n + 1] for s in batch])
        _, loss = model(x, y)
        total += float(loss) * y.numel()
        count += y.numel()
    return total / count / math.log(2)


def evaluate(output_dir):
    """Bits per character of train.py's model on the held-out text (lower is better)."""
    torch.set_num_threads(THREADS)
    with open(os.path.join(os.environ["OVERNIGHT_PRIVATE_DIR"], "val.txt"), encoding="ascii") as f:
        held_out = encode(f.read())
    model = load_model(output_dir)
    bpb = bits_per_char(model, held_out)
    if not math.isfinite(bpb):
        raise ValueError(f"the held-out loss is not finite: {bpb}")
    parameters = sum(p.numel() for p in model.parameters())
    return {"val_bpb": round(bpb, 6), "parameters": parameters}


def split(text):
    """(training text, held-out text): segments of about SEGMENT characters cut at line ends."""
    segments, start = [], 0
    while start < len(text):
        end = text.find("\n", start + SEGMENT)
        end = len(text) if end < 0 else end + 1
        segments.append(text[start:end])
        start = end
    held = set(range(HELD_OUT_EVERY - 1, len(segments), HELD_OUT_EVERY))
    train = "".join(s for i, s in enumerate(segments) if i not in held)
    return train, "".join(s for i, s in enumerate(segments) if i in held)


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, CORPUS), encoding="ascii") as f:
        corpus = f.read()
    encode(corpus)  # every character is in the vocabulary
    train, held_out = split(corpus)
    with open(os.path.join(os.environ["OVERNIGHT_DATA_DIR"], "train.txt"), "w") as f:
        f.write(train)
    with open(os.path.join(os.environ["OVERNIGHT_PRIVATE_DIR"], "val.txt"), "w") as f:
        f.write(held_out)
    # Setup works in its own copy of the task folder, and later runs see that copy: without
    # the corpus in it, the held-out text is only in the private folder.
    os.remove(os.path.join(here, CORPUS))
    print(f"wrote {len(train):,} training and {len(held_out):,} held-out characters")
