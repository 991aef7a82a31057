"""Every step an agent can trigger through the `edit` tool is bounded, whatever it sends.

A hostile agent writes a 1 MB train.py, then asks for things whose naive cost grows with the
product of the sizes (a nearest-lines hint over every window), with the number of matches, or
that make the compiler recurse or exhaust memory. Each call must answer with a tool error or a
bounded output, quickly, and train.py must stay as it was.
"""

from __future__ import annotations

import difflib
import json
import random
import time
from typing import Any

import pytest

from harness import edit_hint, untrusted
from harness.edit_tool import LINE_CHARS, UNDO_DEPTH, VIEW_CHARS, VIEW_LINES, TrainEditor
from harness.seams import ToolCall, ToolOutcome

# Measured on the 2-core development machine: the worst no-match call on a 1 MB train.py
# took 0.24 s. The bound is 20 times that, so a loaded machine cannot make it flake, and the
# old hint (difflib over every window) would take days.
NO_MATCH_BOUND_S = 5.0
MB = 1_000_000


def edit(editor: TrainEditor, **fields: Any) -> ToolOutcome:
    return editor.call(ToolCall(id=f"call-{editor.calls + 1}", input=fields))


def megabyte_train(kind: str) -> str:
    """A valid train.py just under 1 MB: varied lines, one line repeated, or one huge line."""
    rng = random.Random(7)
    if kind == "one huge line":
        return "X = '" + "ab cd " * 166_000 + "'\n"
    if kind == "one line repeated":
        lines = ["x = x + 1"] * 99_000
    else:
        lines = [
            f"value_{i} = compute(alpha_{i % 97}, beta={i * 3 % 1000}, gamma={rng.random():.6f})"
            for i in range(13_000)
        ]
    source = "x = 0\n" + "\n".join(lines) + "\n"
    assert len(source.encode()) < MB
    return source


def old_str_of(kind: str, lines: int) -> str:
    rng = random.Random(lines)
    if kind == "random lines":
        return "\n".join(f"nothing_{i} = here({rng.random()})" for i in range(lines))
    if kind == "lines of the file":  # every line matches somewhere; the whole never does
        return "\n".join(["x = x + 1"] * lines) + "\nnot in the file"
    return "Y = '" + "ab cd " * (lines * 10) + "'"  # one long line, nearly the file's


@pytest.mark.parametrize("lines", [1_000, 20_000])
@pytest.mark.parametrize("old_kind", ["random lines", "lines of the file", "one long line"])
@pytest.mark.parametrize("train_kind", ["varied lines", "one line repeated", "one huge line"])
def test_a_str_replace_that_matches_nothing_in_a_megabyte_train_py_answers_within_the_bound(
    train_kind, old_kind, lines, monkeypatch
) -> None:
    compared = []
    real = difflib.SequenceMatcher

    def counting(*args, **kwargs):
        compared.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(difflib, "SequenceMatcher", counting)
    source = megabyte_train(train_kind)
    editor = TrainEditor(source)
    old = old_str_of(old_kind, lines)

    started = time.perf_counter()
    outcome = edit(editor, command="str_replace", old_str=old, new_str="y = 2")
    seconds = time.perf_counter() - started

    assert outcome.is_error and "no match for old_str" in outcome.output
    assert seconds < NO_MATCH_BOUND_S
    assert len(compared) <= edit_hint.CLOSE  # the close comparisons are capped, not per window
    assert len(outcome.output) < 40 * LINE_CHARS
    assert editor.source == source


NUMBERED = [f"value_{n} = {n} * scale  # line {n}" for n in range(1, 41)]


def test_the_hint_shows_the_nearest_lines_with_five_lines_around_them() -> None:
    editor = TrainEditor("\n".join(NUMBERED) + "\n")
    old = "value_20 = 20 * scale  # line 20\nvalue_21 = 21 * scael  # line 21\n"

    outcome = edit(editor, command="str_replace", old_str=old, new_str="x = 1\n")

    assert outcome.is_error
    assert "Did you mean lines 20-21?" in outcome.output
    shown = [line.split("\t")[0].strip() for line in outcome.output.splitlines()[1:]]
    assert shown == [str(n) for n in range(15, 27)]


def test_the_hint_finds_a_line_with_a_typo() -> None:
    editor = TrainEditor("\n".join(NUMBERED) + "\n")

    outcome = edit(
        editor, command="str_replace", old_str="value_33 = 33 * sclae  # line 33", new_str="x = 1"
    )

    assert "Did you mean line 33?" in outcome.output
    assert "    33\tvalue_33 = 33 * scale  # line 33" in outcome.output


def test_the_hint_says_when_new_str_is_already_in_train_py() -> None:
    editor = TrainEditor("\n".join(NUMBERED) + "\n")

    outcome = edit(
        editor,
        command="str_replace",
        old_str="value_7 = 7 * scale  # line seven",
        new_str="value_7 = 7 * scale  # line 7",
    )

    assert outcome.is_error
    assert "new_str is already in train.py (from line 7)" in outcome.output


def test_a_large_train_py_is_viewed_in_parts_and_view_range_shows_the_next() -> None:
    source = megabyte_train("varied lines")
    total = len(source.splitlines())
    editor = TrainEditor(source)

    first = edit(editor, command="view")

    assert not first.is_error
    assert len(first.output) < VIEW_CHARS + 2 * LINE_CHARS
    footer = first.output.splitlines()[-1]
    shown = len(first.output.splitlines()) - 1
    assert shown <= VIEW_LINES
    assert footer == (
        f"[lines 1-{shown} of {total} shown; view_range [{shown + 1}, {shown + VIEW_LINES}] "
        "shows the next part]"
    )
    following = edit(editor, command="view", view_range=[shown + 1, shown + 3])
    assert following.output.splitlines() == [
        f"{n:6}\t{source.splitlines()[n - 1]}" for n in range(shown + 1, shown + 4)
    ]
    to_the_end = edit(editor, command="view", view_range=[total - 1, -1])
    assert len(to_the_end.output.splitlines()) == 2


def test_a_huge_line_is_shown_cut_and_says_so() -> None:
    editor = TrainEditor(megabyte_train("one huge line"))

    outcome = edit(editor, command="view")

    assert len(outcome.output) < 2 * LINE_CHARS
    assert "more characters]" in outcome.output


@pytest.mark.parametrize("view_range", [[0, 3], [5, 2], [1, 999], [50, -1], [-3, -1]])
def test_a_view_range_outside_train_py_is_a_tool_error(view_range) -> None:
    editor = TrainEditor("\n".join(NUMBERED) + "\n")

    outcome = edit(editor, command="view", view_range=view_range)

    assert outcome.is_error
    assert "outside train.py's lines 1..40" in outcome.output


def test_an_old_str_matching_everywhere_lists_ten_places_and_counts_the_rest() -> None:
    source = "x = 0\n" + "x += 1\n" * 140_000
    editor = TrainEditor(source)

    started = time.perf_counter()
    outcome = edit(editor, command="str_replace", old_str="x += 1", new_str="x += 2")

    assert time.perf_counter() - started < NO_MATCH_BOUND_S
    assert outcome.is_error
    assert "matches 140000 times (at lines 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 and 139990 more)" in (
        outcome.output
    )


def test_undo_keeps_the_last_changes_only() -> None:
    editor = TrainEditor("x = 0\n")
    for value in range(1, UNDO_DEPTH + 3):
        assert not edit(editor, command="write", content=f"x = {value}\n").is_error

    undone = [edit(editor, command="undo") for _ in range(UNDO_DEPTH + 1)]

    assert [u.is_error for u in undone] == [False] * UNDO_DEPTH + [True]
    assert f"your last {UNDO_DEPTH} changes are undone already" in undone[-1].output
    assert editor.source == "x = 2\n"


@pytest.mark.parametrize(
    "content",
    [
        "x = " + "+".join(["a"] * 300_000) + "\n",  # the compiler recurses past its limit
        "x = a" + ".a" * 300_000 + "\n",
        "x = f" + "()" * 300_000 + "\n",
        "x = " + "-" * 500_000 + "1\n",  # the parser gives up with MemoryError
        "x = " + "lambda: " * 100_000 + "1\n",
        "x = " + "a if b else " * 80_000 + "c\n",
    ],
    ids=["a+a+a", "a.a.a", "f()()()", "----1", "lambda: lambda:", "a if b else"],
)
def test_source_that_breaks_the_compiler_is_refused_as_a_tool_error(content) -> None:
    editor = TrainEditor("x = 0\n")

    outcome = edit(editor, command="write", content=content)

    assert outcome.is_error
    assert "would not compile" in outcome.output and "nested too deeply" in outcome.output
    assert editor.source == "x = 0\n"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("y = 1  # \x1b[2J", "\\x1b"),
        ("y = 1  # \x9b2J", "\\x9b"),
        ("y = 1  # \x07", "\\x07"),
        ("y = 1  # \x7f", "\\x7f"),
        ("y = 'abc\u202e'", "\\u202e"),
        ("y = 'a\u2066b'", "\\u2066"),
        ("y = '\udcff'", "\\udcff"),
        ("y = '\ud800'", "\\ud800"),
        ("y = 1\x00", "\\x00"),
    ],
)
@pytest.mark.parametrize("command", ["write", "str_replace", "insert"])
def test_code_with_a_control_or_bidi_character_is_refused_saying_what_to_write(
    command, text, shown
) -> None:
    editor = TrainEditor("x = 0\n")
    fields = {
        "write": {"content": f"x = 0\n{text}\n"},
        "str_replace": {"old_str": "x = 0", "new_str": f"x = 0\n{text}"},
        "insert": {"insert_line": 1, "new_str": text},
    }[command]

    outcome = edit(editor, command=command, **fields)

    assert outcome.is_error
    assert f"{shown} at line 2" in outcome.output or f"{shown} at line 1" in outcome.output
    assert f"write it as the escape '{shown}' inside a string literal" in outcome.output
    assert editor.source == "x = 0\n"
    assert untrusted.printable(outcome.output) == outcome.output  # the answer itself is clean


def test_tabs_carriage_returns_and_form_feeds_are_allowed_in_code() -> None:
    editor = TrainEditor("x = 0\n")

    outcome = edit(editor, command="write", content="x = 0\r\n\x0cdef f():\r\n\treturn 1\r\n")

    assert not outcome.is_error, outcome.output


def nested(depth: int) -> dict:
    value: dict = {"leaf": "\x1b[2J"}
    for _ in range(depth):
        value = {"deeper": value}
    return value


@pytest.mark.parametrize("depth", [600, 100_000])
def test_a_deeply_nested_call_is_a_tool_error_and_only_a_bounded_copy_is_kept(depth) -> None:
    editor = TrainEditor("x = 0\n")

    outcome = edit(editor, command="view", extra=nested(depth))

    assert outcome.is_error and "extra" in outcome.output
    kept = json.dumps(outcome.call.input)  # no RecursionError
    assert kept.count("{") <= untrusted.MAX_DEPTH + 1
    assert f"nested deeper than {untrusted.MAX_DEPTH} levels" in kept


def test_unknown_fields_with_hostile_names_are_named_cut_and_escaped() -> None:
    editor = TrainEditor("x = 0\n")
    fields = {f"\x1b]0;title{n}\x07" + "k" * 5000: "\x9b" for n in range(50)}

    outcome = edit(editor, command="view", **fields)

    assert outcome.is_error
    assert "\x1b" not in outcome.output and "\x9b" not in outcome.output
    assert "\\x1b]0;title0" in outcome.output
    assert "; and 45 more" in outcome.output
    assert len(outcome.output) < 1000


def test_after_the_proposal_deadline_every_call_is_refused() -> None:
    editor = TrainEditor("x = 0\n", deadline=time.monotonic() - 1)

    outcome = edit(editor, command="write", content="x = 1\n")

    assert outcome.is_error
    assert "proposal_timeout" in outcome.output
    assert editor.source == "x = 0\n"
