"""How much of the model agent's prompt is cacheable, and does its size stay bounded?

Simulates a night of N experiments (default 200) on tasks/quickstart: a seeded mix of keeps,
discards, crashes, timeouts, invalid and skipped experiments, with one-line descriptions, the
output tails of failures and a growing diff from the baseline to the best. For every proposal it
builds the first request exactly as the agent does (`build_prompt`, the default
`max_prompt_bytes`) and measures:
  * the cacheable prefix: the `edit` tool's schema, the system prompt (role and rules) and the
    task part (program.md, prepare.py), which are byte-identical across proposals;
  * its share of the bytes the request sends, and the whole prompt's size.

Usage: .venv/bin/python bench/prompt.py [--experiments N] [--max-prompt-bytes B]
Nothing is asserted and nothing leaves this machine; it prints a table.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.agents.prompt import build_prompt
from harness.edit_tool import EDIT_TOOL
from harness.model_config import ModelAgentConfig
from harness.seams import Direction, ExperimentRecord, ProposalContext, Verdict

TASK = Path(__file__).resolve().parent.parent / "tasks" / "quickstart"
OUTCOMES = [
    (Verdict.KEEP, 0.10),
    (Verdict.DISCARD, 0.62),
    (Verdict.CRASH, 0.10),
    (Verdict.TIMEOUT, 0.05),
    (Verdict.INVALID, 0.05),
    (Verdict.SKIPPED, 0.08),
]
IDEAS = [
    "raise the learning rate to {v}",
    "use {v} hidden units",
    "train for {v} epochs with a cosine schedule",
    "weight decay {v} on the head only",
    "batch size {v} and a warm-up of 2 epochs",
    "scale the init by {v} and normalise the features",
]


def simulate(experiments: int, seed: int = 0) -> list[ProposalContext]:
    """The context of every proposal of a simulated night, in order."""
    rng = random.Random(seed)
    program = (TASK / "program.md").read_text()
    prepare = (TASK / "prepare.py").read_text()
    train = (TASK / "train.py").read_text()
    rows = [ExperimentRecord(0, "0000000", 1.25744, Verdict.KEEP, "baseline")]
    tails: dict[int, str] = {}
    diff_lines: list[str] = []
    contexts = []
    best = rows[0]
    for n in range(1, experiments + 1):
        contexts.append(
            ProposalContext(
                experiment=n,
                program=program,
                prepare_source=prepare,
                train_source=train,
                metric="val_loss",
                direction=Direction.MINIMIZE,
                history=list(rows),
                best=best,
                output_tails={k: tails[k] for k in sorted(tails)[-3:]},
                best_diff="\n".join(diff_lines),
            )
        )
        status = rng.choices([s for s, _ in OUTCOMES], [w for _, w in OUTCOMES])[0]
        idea = rng.choice(IDEAS).format(v=round(rng.uniform(0.001, 64), 3))
        metric = None
        if status is Verdict.KEEP:
            metric = (best.metric or 1.0) * rng.uniform(0.97, 0.999)
            diff_lines += [f"-CONSTANT_{n} = 1", f"+CONSTANT_{n} = 2  # {idea}"]
        elif status is Verdict.DISCARD:
            metric = (best.metric or 1.0) * rng.uniform(1.0, 1.2)
        elif status in (Verdict.CRASH, Verdict.TIMEOUT, Verdict.INVALID):
            tails[n] = (
                "epoch 1/4 train_loss 0.91\n" * 40
                + "Traceback (most recent call last):\n"
                + ('  File "/overnight/train/train.py", line 31, in <module>\n' * 20)
                + "ValueError: shapes (4000,33) and (32,) not aligned\n"
            )
        row = ExperimentRecord(n, f"{n:07x}", metric, status, f"{idea} (try {n})")
        rows.append(row)
        if status is Verdict.KEEP:
            best = row
    return contexts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=200)
    default_limit = ModelAgentConfig.model_fields["max_prompt_bytes"].default
    parser.add_argument("--max-prompt-bytes", type=int, default=default_limit)
    args = parser.parse_args()

    tool_bytes = len(json.dumps(EDIT_TOOL).encode())
    rows = []
    prefixes = set()
    for context in simulate(args.experiments):
        prompt = build_prompt(context, args.max_prompt_bytes)
        prefixes.add((prompt.system, prompt.task))
        prefix = tool_bytes + prompt.stable_bytes
        total = tool_bytes + prompt.size
        rows.append((context.experiment, total, prefix, prefix / total))

    print(
        f"simulated night: {args.experiments} experiments on tasks/quickstart, "
        f"max_prompt_bytes = {args.max_prompt_bytes}"
    )
    print(
        f"cacheable prefix (edit tool schema + role and rules + program.md + prepare.py): "
        f"{rows[0][2]} bytes, {'identical' if len(prefixes) == 1 else 'NOT identical'} "
        f"in all {len(rows)} proposals"
    )
    print()
    print(f"{'experiment':>10} {'prompt bytes':>13} {'cacheable':>10} {'share':>7}")
    marks = sorted({1, 10, 25, 50, 100, 150, args.experiments} & {r[0] for r in rows})
    for experiment, total, prefix, share in rows:
        if experiment in marks:
            print(f"{experiment:>10} {total:>13} {prefix:>10} {share:>7.1%}")
    shares = [share for *_, share in rows]
    print()
    print(
        f"cacheable share per proposal over all {len(rows)}: min {min(shares):.1%}, "
        f"mean {statistics.mean(shares):.1%}, max {max(shares):.1%}"
    )
    sizes = {r[0]: r[1] for r in rows}
    wanted = [e for e in (1, 100, 200) if e in sizes]
    print(
        "prompt size at "
        + ", ".join(f"experiment {e}: {sizes[e]} bytes" for e in wanted)
        + f" (largest {max(sizes.values())}, limit {args.max_prompt_bytes})"
    )


if __name__ == "__main__":
    main()
