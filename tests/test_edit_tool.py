"""The `edit` tool, used the way an agent uses it: one call at a time, reading each answer."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from harness.edit_tool import EDIT_TOOL, Command, TrainEditor
from harness.seams import ToolCall, ToolOutcome

TRAIN = """import math

LEARNING_RATE = 0.01
EPOCHS = 4


def schedule(step):
    return LEARNING_RATE * math.cos(step / EPOCHS)


print("loss:", schedule(1))
"""
LINES = TRAIN.splitlines()


def edit(editor: TrainEditor, **fields: Any) -> ToolOutcome:
    return editor.call(ToolCall(id=f"call-{editor.calls + 1}", input=fields))


def test_view_shows_every_line_numbered() -> None:
    editor = TrainEditor(TRAIN)

    outcome = edit(editor, command="view")

    assert not outcome.is_error
    assert outcome.output.splitlines() == [f"{n:6}\t{line}" for n, line in enumerate(LINES, 1)]
    assert "     3\tLEARNING_RATE = 0.01" in outcome.output
    assert editor.source == TRAIN


def test_str_replace_with_one_match_changes_the_source() -> None:
    editor = TrainEditor(TRAIN)

    outcome = edit(
        editor,
        command="str_replace",
        old_str="LEARNING_RATE = 0.01",
        new_str="LEARNING_RATE = 0.02",
    )

    assert not outcome.is_error, outcome.output
    assert "compiles" in outcome.output
    assert editor.source == TRAIN.replace("LEARNING_RATE = 0.01", "LEARNING_RATE = 0.02")
    assert editor.outcomes == [outcome]


def test_str_replace_with_no_match_shows_the_nearest_lines() -> None:
    editor = TrainEditor(TRAIN)

    outcome = edit(
        editor, command="str_replace", old_str="LEARNING_RATE = 0.1", new_str="LEARNING_RATE = 0.2"
    )

    assert outcome.is_error
    assert "no match for old_str" in outcome.output
    assert "Did you mean" in outcome.output
    assert "     3\tLEARNING_RATE = 0.01" in outcome.output
    assert editor.source == TRAIN


def test_str_replace_with_no_match_nowhere_near_points_to_view() -> None:
    editor = TrainEditor(TRAIN)

    outcome = edit(editor, command="str_replace", old_str="zzzz qqqq wwww", new_str="x = 1")

    assert outcome.is_error
    assert "Did you mean" not in outcome.output
    assert "view" in outcome.output
    assert editor.source == TRAIN


def test_str_replace_with_two_matches_says_how_many_and_where() -> None:
    editor = TrainEditor(TRAIN)

    outcome = edit(editor, command="str_replace", old_str="EPOCHS", new_str="ROUNDS")

    assert outcome.is_error
    assert "matches 2 times" in outcome.output
    assert "at lines 4, 8" in outcome.output
    assert editor.source == TRAIN


@pytest.mark.parametrize(
    ("insert_line", "expected_lines"),
    [
        (0, ["# added", *LINES]),
        (4, [*LINES[:4], "# added", *LINES[4:]]),
        (len(LINES), [*LINES, "# added"]),
    ],
    ids=["top", "middle", "end"],
)
def test_insert_puts_the_text_after_the_given_line(insert_line, expected_lines) -> None:
    editor = TrainEditor(TRAIN)

    outcome = edit(editor, command="insert", insert_line=insert_line, new_str="# added")

    assert not outcome.is_error, outcome.output
    assert editor.source == "\n".join(expected_lines) + "\n"


def test_insert_at_the_end_of_a_file_without_final_newline() -> None:
    editor = TrainEditor("x = 1")

    outcome = edit(editor, command="insert", insert_line=1, new_str="y = 2")

    assert not outcome.is_error, outcome.output
    assert editor.source == "x = 1\ny = 2\n"


@pytest.mark.parametrize("insert_line", [-1, len(LINES) + 1, 10**6])
def test_insert_outside_the_file_is_refused(insert_line) -> None:
    editor = TrainEditor(TRAIN)

    outcome = edit(editor, command="insert", insert_line=insert_line, new_str="# added")

    assert outcome.is_error
    assert f"outside 0..{len(LINES)}" in outcome.output
    assert editor.source == TRAIN


def test_write_replaces_the_whole_file() -> None:
    editor = TrainEditor(TRAIN)
    new = "EPOCHS = 1\nprint('loss:', 0.5)\n"

    outcome = edit(editor, command="write", content=new)

    assert not outcome.is_error, outcome.output
    assert editor.source == new
    assert "2 lines" in outcome.output


def test_undo_steps_back_one_change_at_a_time() -> None:
    editor = TrainEditor(TRAIN)
    edit(editor, command="str_replace", old_str="EPOCHS = 4", new_str="EPOCHS = 8")
    after_first = editor.source
    edit(editor, command="insert", insert_line=0, new_str="# tuned")
    assert editor.source == "# tuned\n" + after_first

    first_undo = edit(editor, command="undo")
    assert not first_undo.is_error
    assert editor.source == after_first

    second_undo = edit(editor, command="undo")
    assert not second_undo.is_error
    assert editor.source == TRAIN

    third_undo = edit(editor, command="undo")
    assert third_undo.is_error
    assert "nothing to undo" in third_undo.output
    assert editor.source == TRAIN


def test_undo_with_nothing_to_undo_is_a_tool_error() -> None:
    editor = TrainEditor(TRAIN)

    outcome = edit(editor, command="undo")

    assert outcome.is_error
    assert "nothing to undo" in outcome.output
    assert editor.source == TRAIN


def test_a_refused_change_leaves_nothing_to_undo() -> None:
    editor = TrainEditor(TRAIN)
    edit(editor, command="write", content="def broken(:\n")

    outcome = edit(editor, command="undo")

    assert outcome.is_error
    assert "nothing to undo" in outcome.output


@pytest.mark.parametrize(
    "fields",
    [
        {
            "command": "str_replace",
            "old_str": "def schedule(step):",
            "new_str": "def schedule(step:",
        },
        {"command": "insert", "insert_line": 7, "new_str": "    return ("},
        {"command": "write", "content": "for x in range(3)\n    print(x)\n"},
        {"command": "str_replace", "old_str": "    return LEARNING_RATE", "new_str": "return LR"},
    ],
    ids=["str_replace", "insert", "write", "indentation"],
)
def test_a_change_that_would_not_compile_is_refused(fields) -> None:
    editor = TrainEditor(TRAIN)

    outcome = edit(editor, **fields)

    assert outcome.is_error
    assert "would not compile" in outcome.output
    assert "train.py is unchanged" in outcome.output
    assert editor.source == TRAIN


def test_the_compile_error_names_the_line() -> None:
    editor = TrainEditor(TRAIN)

    outcome = edit(
        editor, command="str_replace", old_str="def schedule(step):", new_str="def schedule(step:"
    )

    assert outcome.is_error
    assert "at line 7" in outcome.output
    assert "     7\tdef schedule(step:" in outcome.output


@pytest.mark.parametrize(
    "fields",
    [
        {"command": "write", "content": "x = 1\n\x00\n"},
        {"command": "write", "content": "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"},
        {"command": "write", "content": bytes(range(1, 256)).decode("latin-1")},
        {"command": "write", "content": "x = '\udcff'\n"},
        {"command": "str_replace", "old_str": "EPOCHS = 4", "new_str": "EPOCHS = 4\x00"},
        {"command": "insert", "insert_line": 1, "new_str": "\x01\x02\x03\x04"},
    ],
    ids=["nul", "png-header", "all-bytes", "lone-surrogate", "nul-in-replace", "control-chars"],
)
def test_nul_bytes_and_binary_junk_are_refused(fields) -> None:
    editor = TrainEditor(TRAIN)

    outcome = edit(editor, **fields)

    assert outcome.is_error
    assert "refused" in outcome.output
    assert editor.source == TRAIN


def test_a_change_that_changes_nothing_is_refused() -> None:
    editor = TrainEditor(TRAIN)

    outcome = edit(editor, command="str_replace", old_str="EPOCHS = 4", new_str="EPOCHS = 4")

    assert outcome.is_error
    assert "exactly as it is" in outcome.output


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({}, "command"),
        ({"command": "delete"}, "command"),
        ({"command": "VIEW"}, "command"),
        ({"command": "str_replace", "new_str": "x"}, "old_str"),
        ({"command": "str_replace", "old_str": "EPOCHS = 4"}, "new_str"),
        ({"command": "str_replace", "old_str": "", "new_str": "x"}, "old_str is empty"),
        ({"command": "str_replace", "old_str": 4, "new_str": "5"}, "old_str"),
        ({"command": "insert", "new_str": "# added"}, "insert_line"),
        ({"command": "insert", "insert_line": 1}, "new_str"),
        ({"command": "insert", "insert_line": "two", "new_str": "# x"}, "insert_line"),
        ({"command": "write"}, "content"),
        ({"command": "view", "path": "/etc/passwd"}, "path"),
        ({"command": "write", "path": "prepare.py", "content": "x = 1\n"}, "path"),
        ({"command": "view", "file": "prepare.py"}, "file"),
        (None, "object"),
        ("view", "object"),
        (["view"], "object"),
    ],
)
def test_bad_calls_are_tool_errors_never_exceptions(raw, expected) -> None:
    editor = TrainEditor(TRAIN)

    outcome = editor.call(ToolCall(id="bad", input=raw))

    assert outcome.is_error
    assert expected in outcome.output
    assert editor.source == TRAIN
    assert editor.outcomes == [outcome]


def test_the_call_limit_refuses_every_call_after_it() -> None:
    editor = TrainEditor(TRAIN, max_calls=3)
    answers = [edit(editor, command="view") for _ in range(3)]
    assert not any(a.is_error for a in answers)

    over = edit(editor, command="str_replace", old_str="EPOCHS = 4", new_str="EPOCHS = 5")

    assert over.is_error
    assert "call limit reached (3 calls)" in over.output
    assert editor.source == TRAIN
    assert edit(editor, command="view").is_error


def _file_of(size: int) -> str:
    """A valid train.py of exactly `size` bytes in UTF-8."""
    head = "x = 1\n#"
    return head + "a" * (size - len(head) - 1) + "\n"


def test_the_size_limit_counts_bytes() -> None:
    editor = TrainEditor(TRAIN, max_bytes=200)

    at_limit = edit(editor, command="write", content=_file_of(200))
    assert not at_limit.is_error, at_limit.output
    assert len(editor.source.encode()) == 200

    over = edit(editor, command="write", content=_file_of(201))
    assert over.is_error
    assert "201 bytes" in over.output
    assert "200-byte limit" in over.output
    assert editor.source == _file_of(200)

    # 150 characters, 292 bytes: the limit is on bytes, not characters.
    wide = "x = 1\n#" + "é" * 142 + "\n"
    assert len(wide) < 200 < len(wide.encode())
    refused = edit(editor, command="write", content=wide)
    assert refused.is_error
    assert editor.source == _file_of(200)


def test_the_size_limit_applies_to_str_replace_and_insert() -> None:
    editor = TrainEditor(TRAIN, max_bytes=len(TRAIN.encode()) + 5)

    grown = edit(editor, command="str_replace", old_str="EPOCHS = 4", new_str="EPOCHS = 4000000")
    inserted = edit(editor, command="insert", insert_line=0, new_str="# padding")

    assert grown.is_error
    assert inserted.is_error
    assert editor.source == TRAIN


def test_the_tool_schema_has_no_path_to_name() -> None:
    schema = EDIT_TOOL["input_schema"]

    assert EDIT_TOOL["name"] == "edit"
    assert set(schema["properties"]) == {
        "command",
        "old_str",
        "new_str",
        "insert_line",
        "content",
        "view_range",
    }
    assert not any("path" in name or "file" in name for name in schema["properties"])
    assert schema["required"] == ["command"]
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]["command"]["enum"]) == set(get_args(Command))


@pytest.mark.parametrize("command", EDIT_TOOL["input_schema"]["properties"]["command"]["enum"])
def test_every_command_in_the_schema_is_understood(command) -> None:
    editor = TrainEditor(TRAIN)

    outcome = edit(editor, command=command)

    # view works bare; the others ask for their own field (or have nothing to undo), never
    # complain that the command itself is unknown.
    assert "command is one of" not in outcome.output
    assert outcome.is_error == (command != "view")
