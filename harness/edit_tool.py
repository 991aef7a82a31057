"""The agent's one tool: `edit`, bound to `train.py`. It has no path argument, so no other file can be named.

Every change is compiled (in a child process) before it is accepted; a change that does not
compile is refused and the reason goes back to the agent as the tool result. Errors here are
always for the model. Each call's input is untrusted: code with control characters is refused,
and only a bounded, valid copy of the call is kept. Every call's work is bounded whatever the
sizes: views come in parts, match lists and hints are capped, the undo stack keeps `UNDO_DEPTH`.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from harness import untrusted
from harness.compile_check import COMPILE_TIMEOUT_S, CompileProblem, check_compiles
from harness.edit_hint import nearest
from harness.seams import ToolCall, ToolOutcome

VIEW_LINES = 2000  # most lines one `view` shows
VIEW_CHARS = 100_000  # most characters one `view` shows
LINE_CHARS = 2000  # a longer line is shown cut
MATCHES_LISTED = 10
UNDO_DEPTH = 10
CODE_FIELDS = {"str_replace": "new_str", "insert": "new_str", "write": "content"}

Command = Literal["view", "str_replace", "insert", "write", "undo"]


class EditInput(BaseModel):
    """Edit `train.py`, the only file you may change."""

    model_config = ConfigDict(extra="forbid")

    command: Command
    old_str: str | None = None
    new_str: str | None = None
    insert_line: int | None = None
    content: str | None = None
    view_range: tuple[int, int] | None = None


EDIT_TOOL = {
    "name": "edit",
    "description": (
        "View or change train.py, the only file you may edit. Commands: "
        "`view` shows it with line numbers (a large file in parts: `view_range`); "
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
            "view_range": {
                "type": "array",
                "items": {"type": "integer"},
                "minItems": 2,
                "maxItems": 2,
                "description": "view: [first, last] line to show (last -1: to the end).",
            },
        },
        "required": ["command"],
        "additionalProperties": False,
    },
}


class EditRefused(Exception):
    """A call the model can fix; its message is the tool result."""


class TrainEditor:
    """The `edit` tool over an in-memory copy of `train.py`."""

    def __init__(
        self,
        source: str,
        max_calls: int = 40,
        max_bytes: int = 1_000_000,
        deadline: float | None = None,
    ) -> None:
        self._source = self._original = source
        self._undo: list[str] = []
        self.max_calls = max_calls
        self.max_bytes = max_bytes
        self.deadline = deadline  # time.monotonic() after which every call is refused
        self.calls = 0
        self.outcomes: list[ToolOutcome] = []

    @property
    def source(self) -> str:
        return self._source

    @property
    def calls_left(self) -> int:
        return max(0, self.max_calls - self.calls)

    def restart(self) -> None:
        """Back to the starting `train.py`; the calls made so far still count."""
        self._source = self._original
        self._undo = []

    def call(self, call: ToolCall) -> ToolOutcome:
        """Answer one call; the outcome keeps a bounded, valid copy of what the agent sent."""
        kept = ToolCall(id=untrusted.one_line(str(call.id), 200), input=untrusted.plain(call.input))
        outcome = self._call(kept, call.input)
        self.outcomes.append(outcome)
        return outcome

    def _call(self, call: ToolCall, raw: Any) -> ToolOutcome:
        self.calls += 1
        try:
            if self.calls > self.max_calls:
                raise EditRefused(
                    f"call limit reached ({self.max_calls} calls); stop editing and reply with a "
                    "one-line description of your change"
                )
            if self.deadline is not None and time.monotonic() > self.deadline:
                raise EditRefused(
                    "this proposal's time (proposal_timeout) is up; it will not be run. "
                    "Reply with a one-line description"
                )
            edit = _parse(call.input)
            _check_code(raw, edit.command)
            output = self._dispatch(edit)
        except EditRefused as refused:
            return ToolOutcome(call=call, output=str(refused), is_error=True)
        return ToolOutcome(call=call, output=output, is_error=False)

    def _dispatch(self, edit: EditInput) -> str:
        if edit.command == "view":
            return _view(self._source, edit.view_range)
        if edit.command == "undo":
            if not self._undo:
                raise EditRefused(
                    "nothing to undo: train.py is as it was at the start, or your last "
                    f"{UNDO_DEPTH} changes are undone already (only that many are kept)"
                )
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
            raise EditRefused(f"no match for old_str in train.py.{nearest(self._source, old, new)}")
        lines = ", ".join(map(str, _match_lines(self._source, old)))
        more = f" and {count - MATCHES_LISTED} more" if count > MATCHES_LISTED else ""
        raise EditRefused(
            f"old_str matches {count} times (at lines {lines}{more}); "
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
            check_compiles(new_source, _compile_time_left(self.deadline))
        except CompileProblem as err:
            raise EditRefused(
                f"refused, train.py would not compile: {err.msg}"
                f"{f' at line {err.lineno}' if err.lineno else ''}"
                f"{_context(new_source, err.lineno)}\ntrain.py is unchanged"
            ) from None
        self._undo = [*self._undo[-(UNDO_DEPTH - 1) :], self._source]
        self._source = new_source
        return f"train.py changed ({len(new_source.splitlines())} lines); it compiles"


def _compile_time_left(deadline: float | None) -> float:
    """Seconds a compile may take: its own limit, and no more than the proposal has left (but
    at least a second, so a call started in time gets a real answer)."""
    if deadline is None:
        return COMPILE_TIMEOUT_S
    return min(COMPILE_TIMEOUT_S, max(1.0, deadline - time.monotonic()))


def _parse(raw: Any) -> EditInput:
    if not isinstance(raw, dict):
        raise EditRefused('the edit tool takes an object such as {"command": "view"}')
    try:
        return EditInput.model_validate(raw)
    except ValidationError as err:
        errors = err.errors()
        problems = "; ".join(
            f"{untrusted.one_line('.'.join(map(str, e['loc'])), 60) or 'input'}: {e['msg']}"
            for e in errors[:5]
        ) + (f"; and {len(errors) - 5} more" if len(errors) > 5 else "")
        raise EditRefused(
            f"invalid edit call ({problems}); command is one of view, str_replace, insert, write, undo"
        ) from None


def _check_code(raw: dict[str, Any], command: str) -> None:
    """Refuse text for train.py holding control or invisible characters, as the agent sent it."""
    name = CODE_FIELDS.get(command, "")
    value = raw.get(name)
    problem = untrusted.code_problem(value, name) if isinstance(value, str) else ""
    if problem:
        raise EditRefused(f"refused: {problem}; train.py is unchanged")


def _need(value: Any, name: str) -> Any:
    if value is None:
        raise EditRefused(f"this command needs `{name}`")
    return value


def _view(source: str, view_range: tuple[int, int] | None) -> str:
    """The lines asked for, numbered, at most VIEW_LINES of them and VIEW_CHARS characters."""
    lines = source.splitlines()
    if not lines and view_range is None:
        return "(train.py is empty)"
    first, last = view_range or (1, -1)
    last = len(lines) if last == -1 else last
    if not 1 <= first <= max(1, len(lines)) or not first <= last <= len(lines):
        raise EditRefused(
            f"view_range [{first}, {last}] is outside train.py's lines 1..{len(lines)} "
            "(last may be -1 for the end)"
        )
    shown: list[str] = []
    size, number = 0, first
    while number <= last and len(shown) < VIEW_LINES and size < VIEW_CHARS:
        shown.append(f"{number:6}\t{_cut(lines[number - 1], LINE_CHARS)}")
        size += len(shown[-1]) + 1
        number += 1
    if number <= last:
        shown.append(
            f"[lines {first}-{number - 1} of {len(lines)} shown; view_range "
            f"[{number}, {min(last, number + VIEW_LINES - 1)}] shows the next part]"
        )
    return "\n".join(shown)


def _match_lines(source: str, old: str) -> list[int]:
    """The lines of the first MATCHES_LISTED matches, in one pass over the source."""
    lines: list[int] = []
    line, counted = 1, 0
    start = source.find(old)
    while start != -1 and len(lines) < MATCHES_LISTED:
        line += source.count("\n", counted, start)
        counted = start
        lines.append(line)
        start = source.find(old, start + 1)
    return lines


def _cut(line: str, limit: int = 300) -> str:
    return (
        line if len(line) <= limit else line[:limit] + f" [... {len(line) - limit} more characters]"
    )


def _context(source: str, lineno: int | None) -> str:
    if not lineno:
        return ""
    lines = source.splitlines()
    shown = range(max(1, lineno - 2), min(len(lines), lineno + 2) + 1)
    return ":\n" + "\n".join(f"{n:6}\t{_cut(lines[n - 1])}" for n in shown)
