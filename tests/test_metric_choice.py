"""Choosing the metric of a folder that never declared one: what train.py printed, what
program.md says. Table-driven, with outputs and program.md texts in the shapes real folders use."""

from __future__ import annotations

import pytest

from harness.errors import TaskError
from harness.metric_choice import infer_metric, printed_metric, printed_metrics
from harness.seams import Direction

SUMMARY = """Vocab size: 8,192
step 00120 (99.8%) | loss: 3.211 | remaining: 1s    \rstep 00121 (100.0%) | loss: 3.209
---
val_bpb:          0.997900
training_seconds: 300.1
peak_vram_mb:     45060.2
total_tokens_M:   499.6
num_steps:        953
depth:            8
"""


def test_the_summary_block_is_read_name_by_name() -> None:
    found = printed_metrics(SUMMARY)

    assert list(found) == [
        "val_bpb",
        "training_seconds",
        "peak_vram_mb",
        "total_tokens_M",
        "num_steps",
        "depth",
    ]
    assert found["val_bpb"] == 0.9979
    assert "loss" not in found  # only at the start of a line, never mid-line in a progress bar


@pytest.mark.parametrize(
    ("output", "name", "value"),
    [
        ("val_loss=0.25\n", "val_loss", 0.25),
        ("score: +0.012\n", "score", 0.012),
        ("tokens: 1,234,567\n", "tokens", 1234567.0),
        ("accuracy: 93.5%\n", "accuracy", 93.5),
        ("loss: 2.0\n---\nloss: 1.5\n", "loss", 1.5),
        ("progress\rval_loss: 0.75\n", "val_loss", 0.75),
        ("VAL_LOSS: 0.5\n", "val_loss", 0.5),
    ],
    ids=["equals", "signed", "grouped", "percent", "last-wins", "after-cr", "any-case"],
)
def test_printed_values_in_the_formats_folders_use(output, name, value) -> None:
    assert printed_metric(output, name) == value


@pytest.mark.parametrize("output", ["model: gpt-small\n", "val_loss: nan\n", "val_loss: n/a\n"])
def test_no_finite_number_is_no_metric(output) -> None:
    assert printed_metric(output, "val_loss") is None


NAMES = ["val_bpb", "training_seconds", "peak_vram_mb", "num_steps", "depth"]


@pytest.mark.parametrize(
    ("names", "program", "metric", "direction", "why"),
    [
        (
            NAMES,
            "Read the files. **Your aim: reach the lowest val_bpb you can.** VRAM may grow a bit.",
            "val_bpb",
            Direction.MINIMIZE,
            "lowest val_bpb",
        ),
        (
            ["val_spearman", "train_loss"],
            "We want the highest val_spearman on the held-out variants.",
            "val_spearman",
            Direction.MAXIMIZE,
            "highest val_spearman",
        ),
        (
            ["puzzles_solved", "avg_time_per_solve", "score"],
            "Maximize puzzles_solved. If two runs tie, a smaller avg_time_per_solve wins, "
            "and puzzles_solved is what we keep on.",
            "puzzles_solved",
            Direction.MAXIMIZE,
            "Maximize puzzles_solved",
        ),
        (NAMES, "Make the model better.", "val_bpb", Direction.MINIMIZE, "only metric printed"),
        (
            ["seconds", "checksum"],
            "Make it fast.",
            "seconds",
            Direction.MINIMIZE,
            "only timing printed",
        ),
        (
            ["val_sharpe", "trades"],
            "Report val_sharpe after every run.",
            "val_sharpe",
            Direction.MAXIMIZE,
            "from the name val_sharpe",
        ),
        (
            ["train_acc", "val_acc", "test_acc_hidden"],
            "",
            None,
            None,
            None,
        ),
        (
            ["baseline_pass_at_1", "trained_pass_at_1", "delta_pass_at_1", "num_steps", "model"],
            "- Model choice (must fit in 40GB of VRAM)\n"
            "Parse pass@1 on the test split. If pass@1 improved, keep; otherwise discard.",
            "trained_pass_at_1",
            Direction.MAXIMIZE,
            "If pass@1 improved",
        ),
        (
            ["model", "lookback", "val_sharpe"],
            "Try a larger model when a longer lookback helps.",
            "val_sharpe",
            Direction.MAXIMIZE,
            "only metric printed",
        ),
        (["baseline_acc", "acc"], "", "acc", Direction.MAXIMIZE, "only metric printed"),
        (
            ["fitness", "generations"],
            "Maximize the fitness of the best individual.",
            "fitness",
            Direction.MAXIMIZE,
            "Maximize the fitness",
        ),
    ],
    ids=[
        "karpathy",
        "bio",
        "primary-and-secondary",
        "by-name",
        "timing",
        "named-no-cue",
        "three",
        "spelled-pass@1-beside-its-baseline-and-delta",
        "settings-are-not-goals",
        "baseline-beside-itself",
        "plain-word-after-a-goal-verb",
    ],
)
def test_the_metric_program_md_names_with_its_direction(
    names, program, metric, direction, why
) -> None:
    if metric is None:
        with pytest.raises(TaskError) as raised:
            infer_metric(names, program)
        assert "--metric" in str(raised.value)
        for name in names:
            assert name in str(raised.value)
        return
    choice = infer_metric(names, program)

    assert (choice.metric, choice.direction) == (metric, direction)
    assert why in choice.reason


def test_contradicting_goals_are_refused_with_the_flag_to_add() -> None:
    program = "Maximize total_pnl. Also get the highest sharpe. Keep min_pnl higher than zero."

    with pytest.raises(TaskError) as raised:
        infer_metric(["total_pnl", "sharpe", "min_pnl"], program)

    assert "--metric" in str(raised.value)
    assert "total_pnl" in str(raised.value) and "sharpe" in str(raised.value)


def test_a_declared_metric_that_was_not_printed_lists_what_was() -> None:
    with pytest.raises(TaskError) as raised:
        infer_metric(NAMES, "", metric="val_loss", direction=Direction.MINIMIZE)

    message = str(raised.value)
    assert "'val_loss' is not in train.py's output" in message
    assert "val_bpb, training_seconds, peak_vram_mb, num_steps, depth" in message


def test_a_declared_metric_gets_its_direction_inferred() -> None:
    choice = infer_metric(NAMES, "Lower val_bpb is better.", metric="val_bpb")

    assert choice.direction is Direction.MINIMIZE


def test_a_name_that_says_nothing_about_its_direction_asks_for_the_flag() -> None:
    with pytest.raises(TaskError) as raised:
        infer_metric(["fitness"], "Tune fitness.", metric="fitness")

    assert "--direction minimize|maximize" in str(raised.value)


def test_nothing_printed_says_how_to_print_a_metric() -> None:
    with pytest.raises(TaskError) as raised:
        infer_metric([], "Lower loss.")

    assert 'print(f"val_loss: {loss:.6f}")' in str(raised.value)


OUT_OF_DATE = """**The goal: get the highest val_auc.** Higher is better.

The script prints a summary like:

```
---
val_accuracy:     0.856700
val_auc:          0.923400
training_seconds: 45.3
```
"""


def test_a_goal_that_is_not_printed_is_named_and_the_output_example_is_no_goal() -> None:
    """A folder whose prepare.py was swapped for a regression example: the goal program.md
    names is not printed, and training_seconds, in program.md only as an example of the output,
    must not become the metric."""
    with pytest.raises(TaskError) as raised:
        infer_metric(["val_rmse", "val_r2", "training_seconds"], OUT_OF_DATE)

    message = str(raised.value)
    assert "the goal program.md names, val_auc, is not one" in message
    assert "--metric val_rmse" in message
