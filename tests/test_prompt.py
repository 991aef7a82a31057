"""The model agent's prompt: a stable, cacheable prefix first, and a size that stays bounded."""

from __future__ import annotations

from dataclasses import replace

from conftest import QUICKSTART

from harness.agents.prompt import build_prompt, numbered
from harness.seams import Direction, ExperimentRecord, ProposalContext, Verdict

PROGRAM = (QUICKSTART / "program.md").read_text()
PREPARE = (QUICKSTART / "prepare.py").read_text()
TRAIN = (QUICKSTART / "train.py").read_text()
CYCLE = [Verdict.DISCARD, Verdict.DISCARD, Verdict.CRASH, Verdict.KEEP, Verdict.TIMEOUT]


def night_so_far(experiments: int, description_words: int = 12) -> ProposalContext:
    """The context of proposal `experiments + 1` after a synthetic night of that many."""
    rows = [ExperimentRecord(0, "b0", 1.25, Verdict.KEEP, "baseline")]
    metric = 1.25
    for n in range(1, experiments + 1):
        status = CYCLE[n % len(CYCLE)]
        if status is Verdict.KEEP:
            metric *= 0.999
        value = None if status in (Verdict.CRASH, Verdict.TIMEOUT) else metric * 1.01
        description = f"experiment {n}: " + " ".join(
            ["tune the learning rate schedule"] * description_words
        )
        rows.append(
            ExperimentRecord(
                n, f"c{n:06d}", metric if status is Verdict.KEEP else value, status, description
            )
        )
    failed = [r.experiment for r in rows if r.status in (Verdict.CRASH, Verdict.TIMEOUT)][-3:]
    keeps = [r for r in rows if r.status is Verdict.KEEP]
    return ProposalContext(
        experiment=experiments + 1,
        program=PROGRAM,
        prepare_source=PREPARE,
        train_source=TRAIN.replace("EPOCHS = 4", f"EPOCHS = {4 + experiments // 50}"),
        metric="val_loss",
        direction=Direction.MINIMIZE,
        history=rows,
        best=keeps[-1],
        output_tails={n: "step\n" * 3000 + "ZeroDivisionError: boom\n" for n in failed},
        best_diff="\n".join(f"-OLD_{i} = 1\n+NEW_{i} = 2" for i in range(experiments)),
    )


def test_the_stable_prefix_is_byte_identical_across_consecutive_proposals():
    first = build_prompt(night_so_far(7), max_bytes=120_000)
    second = build_prompt(night_so_far(8), max_bytes=120_000)
    assert first.system.encode() == second.system.encode()
    assert first.task.encode() == second.task.encode()
    assert first.experiment != second.experiment
    # The stable part holds the role and rules, program.md and the read-only prepare.py.
    assert "`edit` tool" in first.system and "val_loss" in first.system
    assert PROGRAM.strip() in first.task and PREPARE.strip() in first.task
    assert "def evaluate(output_dir)" in first.task
    # Nothing that changes per proposal leaks into it.
    assert "Experiment 8" not in first.task + first.system
    assert "EPOCHS" not in first.system


def test_a_night_of_1000_experiments_keeps_the_prompt_under_its_configured_size():
    context = night_so_far(1000)
    for limit in (30_000, 120_000):
        prompt = build_prompt(context, max_bytes=limit)
        assert prompt.size <= limit
        # The best train.py is always there in full, with line numbers, and the latest
        # experiments are listed.
        assert numbered(context.train_source) in prompt.experiment
        assert "    14\tLEARNING_RATE = 0.01" in prompt.experiment
        assert "#1000 " in prompt.experiment
        assert "1000 experiments so far" in prompt.experiment
    small = build_prompt(context, max_bytes=30_000).experiment
    assert "in short:" in small  # older history is summarised, not listed
    assert "#3    " not in small
    # The size does not grow with the night: 1000 experiments cost no more than 200.
    assert build_prompt(night_so_far(200), 30_000).size > 25_000 - 10_000
    assert (
        abs(build_prompt(context, 120_000).size - build_prompt(night_so_far(200), 120_000).size)
        < 20_000
    )


def test_the_history_shows_keeps_failures_with_their_output_and_what_changed():
    context = night_so_far(12)
    text = build_prompt(context, max_bytes=120_000).experiment
    assert "12 experiments so far: crash 3, discard 5, keep 2, timeout 2." in text
    assert "Baseline: val_loss = 1.25." in text
    assert f"Best: val_loss = {context.best.metric:.6g} at experiment 8" in text
    assert "Kept changes" in text and "#3     keep" in text
    assert "Experiment 7 (crash)" in text and "ZeroDivisionError: boom" in text
    assert "bytes of output not shown" in text  # long tails keep their end
    assert "+NEW_0 = 2" in text
    first = build_prompt(night_so_far(0), max_bytes=120_000).experiment
    assert "No experiments yet besides the baseline." in first


def test_the_model_is_told_the_settings_budgets_numbers_diffs_and_its_notes():
    context = replace(
        night_so_far(12),
        settings=("time budget: 42s per training run", "edit calls per proposal: at most 7"),
        remaining="12 experiments so far; 3 of 15 left",
        numbers={11: {"val_loss": 1.2, "train_loss": 0.8125, "seconds": 3.5}},
        diffs={11: "--- a/train.py\n+++ b/train.py\n-HIDDEN = 32\n+HIDDEN = 64", 12: "+X = 1"},
        notes="Wider layers crash on memory; try depth next.",
    )
    prompt = build_prompt(context, max_bytes=120_000)
    assert "- time budget: 42s per training run" in prompt.task  # stable all night: cached
    assert "- edit calls per proposal: at most 7" in prompt.task
    text = prompt.experiment
    assert "Budget left: 12 experiments so far; 3 of 15 left" in text
    assert "train_loss = 0.8125, seconds = 3.5" in text
    row = next(line for line in text.splitlines() if line.startswith("#11 "))
    assert "+1 -1" in row  # the diff stat beside the model's own description
    assert "Experiment 11 (discard)" in text and "+HIDDEN = 64" in text
    # most recent first
    assert text.index("Experiment 12 (crash)") < text.index("Experiment 11 (discard)")
    assert "Wider layers crash on memory; try depth next." in text
    # What changes per proposal comes after what does not: the notes are in the last part.
    assert "Wider layers" not in prompt.task + prompt.system
