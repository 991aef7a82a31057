"""The agent's one tool: `edit`, bound to `train.py`. It has no path argument, so no other file can be named.

Every change is compiled before it is accepted; a change that does not compile is refused and
the reason goes back to the agent as the tool result. Errors here are always for the model.
"""

from __future__ import annotations

import difflib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from harness.seams import ToolCall, ToolOutcome

Command = Literal["view", "str_replace", "insert", "write", "undo"]


class EditInput(BaseModel):
    """Edit `train.py`, the only file you may change."""

    model_config = ConfigDict(extra="forbid")

    command: Command
    old_str: str | None = None
    new_str: str | None = None
    insert_line: int | None = None
    content: str | None = None


EDIT_TOOL = {
    "name": "edit",
    "description": (
        "View or change train.py, the only file you may edit. Commands: "
        "`view` shows it with line numbers; "
        "`str_replace` replaces `old_str` (which must match exactly once) with `new_str`; "
        "`insert` puts `new_str` after line `insert_line` (0 = at the top); "
        "`write` replaces the whole file with `content`; "
        "`undo` reverts your last change. "
        "A change that does not compile is refused."
    ),
    "input_schema": {
        "type": "object",
        "properties": {
            "command": {
                "type": "string",
                "enum": ["view", "str_replace", "insert", "write", "undo"],
            },
            "old_str": {"type": "string", "description": "str_replace: exact text to find."},
            "new_str": {"type": "string", "description": "str_replace/insert: the new text."},
            "insert_line": {"type": "integer", "description": "insert: after this line (0 = top)."},
            "content": {"type": "string", "description": "write: the whole new file."},
        },
        "required": ["command"],
        "additionalProperties": False,
    },
}


class EditRefused(Exception):
    """A call the model can fix; its message is the tool result."""


class TrainEditor:
    """The `edit` tool over an in-memory copy of `train.py`."""

    def __init__(self, source: str, max_calls: int = 40, max_bytes: int = 1_000_000) -> None:
        self._source = source
        self._undo: list[str] = []
        self.max_calls = max_calls
        self.max_bytes = max_bytes
        self.calls = 0
        self.outcomes: list[ToolOutcome] = []

    @property
    def source(self) -> str:
        return self._source

    def call(self, call: ToolCall) -> ToolOutcome:
        outcome = self._call(call)
        self.outcomes.append(outcome)
        return outcome

    def _call(self, call: ToolCall) -> ToolOutcome:
        self.calls += 1
        try:
            if self.calls > self.max_calls:
                raise EditRefused(
                    f"call limit reached ({self.max_calls} calls); stop editing and reply with a "
                    "one-line description of your change"
                )
            output = self._dispatch(_parse(call.input))
        except EditRefused as refused:
            return ToolOutcome(call=call, output=str(refused), is_error=True)
        return ToolOutcome(call=call, output=output, is_error=False)

    def _dispatch(self, edit: EditInput) -> str:
        if edit.command == "view":
            return _numbered(self._source)
        if edit.command == "undo":
            if not self._undo:
                raise EditRefused("nothing to undo: train.py is as it was at the start")
            self._source = self._undo.pop()
            return "undone: train.py is back as it was before your last change"
        if edit.command == "str_replace":
            new_source = self._replaced(
                _need(edit.old_str, "old_str"), _need(edit.new_str, "new_str")
            )
        elif edit.command == "insert":
            new_source = self._inserted(
                _need(edit.insert_line, "insert_line"), _need(edit.new_str, "new_str")
            )
        else:
            new_source = _need(edit.content, "content")
        return self._accept(new_source)

    def _replaced(self, old: str, new: str) -> str:
        if old == "":
            raise EditRefused("old_str is empty; give the exact text to replace")
        count = self._source.count(old)
        if count == 1:
            return self._source.replace(old, new, 1)
        if count == 0:
            raise EditRefused(f"no match for old_str in train.py.{_nearest(self._source, old)}")
        lines = _match_lines(self._source, old)
        raise EditRefused(
            f"old_str matches {count} times (at lines {', '.join(map(str, lines))}); "
            "include more surrounding lines so it matches exactly once"
        )

    def _inserted(self, line: int, text: str) -> str:
        lines = self._source.splitlines(keepends=True)
        if not 0 <= line <= len(lines):
            raise EditRefused(
                f"insert_line {line} is outside 0..{len(lines)} (train.py has {len(lines)} lines)"
            )
        if lines and not lines[-1].endswith("\n") and line == len(lines):
            lines[-1] += "\n"
        block = text if text.endswith("\n") else text + "\n"
        return "".join([*lines[:line], block, *lines[line:]])

    def _accept(self, new_source: str) -> str:
        size = len(new_source.encode("utf-8", errors="replace"))
        if size > self.max_bytes:
            raise EditRefused(
                f"refused: train.py would be {size} bytes, over the {self.max_bytes}-byte limit"
            )
        if new_source == self._source:
            raise EditRefused("that change leaves train.py exactly as it is")
        try:
            compile(new_source, "train.py", "exec", dont_inherit=True)
        except SyntaxError as err:
            raise EditRefused(
                f"refused, train.py would not compile: {err.msg}"
                f"{f' at line {err.lineno}' if err.lineno else ''}"
                f"{_context(new_source, err.lineno)}\ntrain.py is unchanged"
            ) from None
        except ValueError as err:  # e.g. NUL bytes
            raise EditRefused(
                f"refused, train.py would not compile: {err}; train.py is unchanged"
            ) from None
        self._undo.append(self._source)
        self._source = new_source
        return f"train.py changed ({len(new_source.splitlines())} lines); it compiles"


def _parse(raw: dict[str, Any]) -> EditInput:
    if not isinstance(raw, dict):
        raise EditRefused('the edit tool takes an object such as {"command": "view"}')
    try:
        return EditInput.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in err.errors()
        )
        raise EditRefused(
            f"invalid edit call ({problems}); command is one of view, str_replace, insert, write, undo"
        ) from None


def _need(value, name: str):
    if value is None:
        raise EditRefused(f"this command needs `{name}`")
    return value


def _numbered(source: str) -> str:
    return "\n".join(f"{n:6}\t{line}" for n, line in enumerate(source.splitlines(), start=1))


def _match_lines(source: str, old: str) -> list[int]:
    lines, start = [], source.find(old)
    while start != -1:
        lines.append(source.count("\n", 0, start) + 1)
        start = source.find(old, start + 1)
    return lines


def _nearest(source: str, old: str) -> str:
    """The lines of train.py most like old_str, so the model can copy them exactly."""
    lines = source.splitlines()
    width = max(1, len(old.splitlines()))
    best, best_at = 0.0, 0
    for at in range(max(1, len(lines) - width + 1)):
        ratio = difflib.SequenceMatcher(None, "\n".join(lines[at : at + width]), old).ratio()
        if ratio > best:
            best, best_at = ratio, at
    if best < 0.5:
        return " Use `view` to see the current text."
    shown = "\n".join(
        f"{n:6}\t{lines[n - 1]}" for n in range(best_at + 1, min(best_at + width, len(lines)) + 1)
    )
    return f" Did you mean these lines (whitespace and characters must match exactly)?\n{shown}"


def _context(source: str, lineno: int | None) -> str:
    if not lineno:
        return ""
    lines = source.splitlines()
    shown = range(max(1, lineno - 2), min(len(lines), lineno + 2) + 1)
    return ":\n" + "\n".join(f"{n:6}\t{lines[n - 1]}" for n in shown)
