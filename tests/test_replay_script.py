"""The `replay` agent: a night's proposals read from a JSONL script, one line a proposal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.agents.replay import ReplayAgent, load_script
from harness.edit_tool import TrainEditor
from harness.errors import TaskError
from harness.seams import Direction, ProposalContext

TRAIN = "LEARNING_RATE = 0.01\nEPOCHS = 4\nprint('loss:', LEARNING_RATE * EPOCHS)\n"

SCRIPT = [
    {
        "description": "halve the learning rate",
        "calls": [
            {"command": "view"},
            {
                "command": "str_replace",
                "old_str": "LEARNING_RATE = 0.01",
                "new_str": "LEARNING_RATE = 0.005",
            },
        ],
    },
    {
        "description": "train longer",
        "calls": [{"command": "str_replace", "old_str": "EPOCHS = 4", "new_str": "EPOCHS = 8"}],
    },
    {
        "description": "add a comment",
        "calls": [{"command": "insert", "insert_line": 0, "new_str": "# tuned overnight"}],
    },
]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def write_script(path: Path, proposals: list[dict]) -> Path:
    return write_lines(path, [json.dumps(p) for p in proposals])


def context(experiment: int) -> ProposalContext:
    return ProposalContext(
        experiment=experiment,
        program="Lower the loss.",
        prepare_source='METRIC = "loss"\n',
        train_source=TRAIN,
        metric="loss",
        direction=Direction.MINIMIZE,
        history=[],
        best=None,
    )


def test_load_script_reads_one_proposal_a_line(tmp_path) -> None:
    path = write_script(tmp_path / "night.jsonl", SCRIPT)

    assert load_script(path) == SCRIPT


def test_blank_lines_are_ignored(tmp_path) -> None:
    path = write_lines(
        tmp_path / "night.jsonl", ["", json.dumps(SCRIPT[0]), "   ", json.dumps(SCRIPT[1]), ""]
    )

    assert load_script(path) == SCRIPT[:2]


@pytest.mark.parametrize(
    "bad",
    ["{not json}", '{"description": "unterminated', "description: halve the rate", "{'single': 1}"],
)
def test_invalid_json_names_the_file_and_the_line(tmp_path, bad) -> None:
    path = write_lines(tmp_path / "night.jsonl", [json.dumps(SCRIPT[0]), "", bad])

    with pytest.raises(TaskError) as raised:
        load_script(path)

    message = str(raised.value)
    assert message.startswith(f"{path}:3: ")
    assert "not JSON" in message


@pytest.mark.parametrize(
    "bad",
    [
        [1, 2],
        "just a string",
        42,
        None,
        {"description": 5},
        {"description": ["a", "b"]},
        {"description": "x", "calls": {"command": "view"}},
        {"description": "x", "calls": "view"},
    ],
    ids=[
        "list",
        "string",
        "number",
        "null",
        "int-description",
        "list-description",
        "calls-object",
        "calls-string",
    ],
)
def test_a_line_of_the_wrong_shape_names_the_file_and_the_line(tmp_path, bad) -> None:
    path = write_lines(tmp_path / "night.jsonl", [json.dumps(SCRIPT[0]), json.dumps(bad)])

    with pytest.raises(TaskError) as raised:
        load_script(path)

    message = str(raised.value)
    assert message.startswith(f"{path}:2: ")
    assert '"description": str' in message


def test_a_missing_script_names_the_file(tmp_path) -> None:
    path = tmp_path / "missing.jsonl"

    with pytest.raises(TaskError) as raised:
        ReplayAgent(path)

    assert str(path) in str(raised.value)
    assert "cannot read" in str(raised.value)


@pytest.mark.parametrize(
    ("experiment", "expected_description", "expected_source"),
    [
        (1, "halve the learning rate", TRAIN.replace("0.01", "0.005")),
        (2, "train longer", TRAIN.replace("EPOCHS = 4", "EPOCHS = 8")),
        (3, "add a comment", "# tuned overnight\n" + TRAIN),
    ],
)
def test_proposal_k_is_line_k(tmp_path, experiment, expected_description, expected_source) -> None:
    agent = ReplayAgent(write_script(tmp_path / "night.jsonl", SCRIPT))
    editor = TrainEditor(TRAIN)

    proposal = agent.propose(context(experiment), editor)

    assert proposal is not None
    assert proposal.description == expected_description
    assert editor.source == expected_source
    assert [o.call.input for o in editor.outcomes] == SCRIPT[experiment - 1]["calls"]


def test_a_resumed_night_picks_up_at_its_own_line(tmp_path) -> None:
    agent = ReplayAgent(write_script(tmp_path / "night.jsonl", SCRIPT))

    # Experiments 1 and 2 happened before the interruption; the new process starts at 3.
    proposal = agent.propose(context(3), TrainEditor(TRAIN))

    assert proposal is not None
    assert proposal.description == "add a comment"


def test_after_the_script_ends_there_are_no_more_proposals(tmp_path) -> None:
    agent = ReplayAgent(write_script(tmp_path / "night.jsonl", SCRIPT))
    for experiment in (1, 2, 3):
        assert agent.propose(context(experiment), TrainEditor(TRAIN)) is not None

    for experiment in (4, 5, 100):
        editor = TrainEditor(TRAIN)
        assert agent.propose(context(experiment), editor) is None
        assert editor.outcomes == []
        assert editor.source == TRAIN


def test_an_empty_script_has_nothing_to_propose(tmp_path) -> None:
    agent = ReplayAgent(write_lines(tmp_path / "night.jsonl", []))

    assert agent.propose(context(1), TrainEditor(TRAIN)) is None


def test_calls_the_editor_refuses_become_tool_errors_not_crashes(tmp_path) -> None:
    script = [
        {
            "description": "a bad call, then a good one",
            "calls": [
                {"command": "write", "path": "prepare.py", "content": "x = 1\n"},
                "not an object",
                {"command": "str_replace", "old_str": "EPOCHS = 4", "new_str": "EPOCHS = 5"},
            ],
        }
    ]
    agent = ReplayAgent(write_script(tmp_path / "night.jsonl", script))
    editor = TrainEditor(TRAIN)

    proposal = agent.propose(context(1), editor)

    assert proposal is not None
    assert [o.is_error for o in editor.outcomes] == [True, True, False]
    assert editor.source == TRAIN.replace("EPOCHS = 4", "EPOCHS = 5")


@pytest.mark.parametrize("entry", [{"calls": []}, {"description": "", "calls": []}])
def test_a_missing_description_gets_a_placeholder(tmp_path, entry) -> None:
    agent = ReplayAgent(write_script(tmp_path / "night.jsonl", [entry]))

    proposal = agent.propose(context(1), TrainEditor(TRAIN))

    assert proposal is not None
    assert proposal.description == "replayed change"
