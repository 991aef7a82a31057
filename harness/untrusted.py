"""What the agent writes is untrusted input: made safe once, where it comes into the loop.

Three seams: the edit tool's calls (`TrainEditor.call`, for every agent), a model's turns
(`LLMAgent`, before they are sent back to the provider) and a finished proposal (the loop,
before anything is committed, recorded or printed). After them:
- every string is valid UTF-8 (a lone surrogate becomes U+FFFD);
- text for humans has no control character but newline and tab: others, and the bidi controls
  that reorder what a terminal shows, become visible escapes such as `\\x1b` and `\\u202e`;
- anything walked or logged is JSON-safe, at most `MAX_DEPTH` levels deep and `MAX_ITEMS` items;
- lengths are capped where a human reads them (`DESCRIPTION_CAP`, `TEXT_CAP`, `LOGGED_CAP`).
Code for train.py is never silently changed: `code_problem` says what to fix instead.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from typing import Any

MAX_DEPTH = 20  # levels kept in a tool input, a transcript or an event
MAX_ITEMS = 10_000  # list items and dict entries kept in one value
DESCRIPTION_CAP = 300  # characters of the one-line description (ledger, git subject, terminal)
TEXT_CAP = 16_384  # characters of each string in events and transcripts
LOGGED_CAP = 1_000_000  # characters of text in one event or transcript
_DIGITS = 100  # longer integers are kept as a note (str() of them may raise)

_SURROGATE = re.compile("[\ud800-\udfff]")
# C0 and C1 controls but tab and newline, DEL, bidi marks, embeddings, overrides and isolates,
# line and paragraph separators, the byte-order mark, and lone surrogates.
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e"
    "\u2066-\u2069\ufeff\ud800-\udfff]"
)
# In code: the same, except that tab, newline, carriage return and form feed are Python whitespace.
_UNSAFE_IN_CODE = re.compile(
    "[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e"
    "\u2066-\u2069\ufeff\ud800-\udfff]"
)
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


def valid(text: str) -> str:
    """The text with every lone surrogate (which UTF-8 cannot hold) replaced by U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, cap: int | None = None) -> str:
    """Text safe to show a human: controls but newline and tab made visible, optionally capped."""
    if cap is not None:
        text = capped(text, cap)
    return _UNSAFE.sub(_escape, text)


def capped(text: str, cap: int) -> str:
    if len(text) <= cap:
        return text
    return text[:cap] + f"... [{len(text) - cap} more characters]"


def one_line(text: str, cap: int = DESCRIPTION_CAP) -> str:
    """One printable line of at most `cap` characters (before escaping): whitespace runs,
    newlines and carriage returns included, become one space."""
    scan = text[: 8 * cap]
    flat = " ".join(scan.split())
    cut = len(flat) > cap or len(scan) < len(text)
    return printable(flat[:cap] + (" [...]" if cut else ""))


def first_line(text: str, cap: int = DESCRIPTION_CAP) -> str:
    """The first line with anything on it (split at newlines only), as `one_line`; "" if none."""
    for line in text[: 16 * cap + 1024].split("\n"):
        if line.strip():
            return one_line(line, cap)
    return ""


def plain(
    value: Any,
    text: Callable[[str], str] = valid,
    depth: int = MAX_DEPTH,
    chars: int | None = None,
) -> Any:
    """A JSON-safe copy: dicts with string keys, lists, strings passed through `text`, finite
    numbers, bools and None, cut at `depth` levels and `MAX_ITEMS` items, and past `chars`
    characters of text if given; anything else as its str()."""
    return _plain(value, text, depth, _Budget(MAX_ITEMS, chars))


@dataclass
class _Budget:
    items: int
    chars: int | None


def _plain(value: Any, text: Callable[[str], str], depth: int, budget: _Budget) -> Any:
    if isinstance(value, str):
        if budget.chars is None:
            return text(value)
        if budget.chars <= 0:
            return "[cut: this record's text is over its size limit]"
        shown = text(value)
        budget.chars -= len(shown)
        return shown
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return (
            value
            if value.bit_length() <= 3 * _DIGITS
            else f"[an integer of {value.bit_length()} bits]"
        )
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if not isinstance(value, dict | list | tuple):
        return text(capped(str(value), 1000))
    if depth <= 0:
        return f"[nested deeper than {MAX_DEPTH} levels]"
    pairs = value.items() if isinstance(value, dict) else enumerate(value)
    kept = list(islice(pairs, max(0, budget.items)))
    budget.items -= len(kept)
    more = len(value) - len(kept)
    if isinstance(value, dict):
        out = {text(str(k))[:200]: _plain(v, text, depth - 1, budget) for k, v in kept}
        if more:
            out["..."] = f"[{more} more entries]"
        return out
    listed = [_plain(v, text, depth - 1, budget) for _, v in kept]
    return [*listed, f"[{more} more items]"] if more else listed


def loads(raw: str) -> Any:
    """JSON from untrusted text: nesting past `MAX_DEPTH` becomes a note and integers too long
    to convert become notes, so reading never recurses without bound; malformed JSON raises
    json.JSONDecodeError as usual."""
    return json.loads(_shallow(raw), parse_int=_int)


def _int(digits: str) -> int | str:
    return int(digits) if len(digits) <= _DIGITS else f"[an integer of {len(digits)} digits]"


def _shallow(raw: str) -> str:
    """The JSON text with every array or object nested deeper than MAX_DEPTH replaced by a note."""
    out: list[str] = []
    depth, cut_from, done = 0, -1, 0
    for token in _STRING.finditer(raw):
        mark = token.group()
        if mark[0] == '"':
            continue
        if mark in "[{":
            depth += 1
            if depth == MAX_DEPTH + 1:
                cut_from = token.start()
        else:
            if depth == MAX_DEPTH + 1 and cut_from >= 0:
                out += [raw[done:cut_from], json.dumps(f"[nested deeper than {MAX_DEPTH} levels]")]
                done, cut_from = token.end(), -1
            depth -= 1
    if not out and cut_from < 0:
        return raw
    return "".join(out) + (raw[done:] if cut_from < 0 else raw[done:cut_from] + '""')


def code_problem(text: str, field: str) -> str:
    """Why `text` may not go into train.py as written (a control or invisible character), or ""."""
    found = _UNSAFE_IN_CODE.search(text)
    if found is None:
        return ""
    at = found.start()
    line = text.count("\n", 0, at) + 1
    column = at - (text.rfind("\n", 0, at) + 1) + 1
    shown = _escape(found)
    what = "a lone surrogate" if 0xD800 <= ord(found.group()) <= 0xDFFF else "the character"
    return (
        f"{field} holds {what} {shown} at line {line}, column {column}; train.py may hold only "
        f"printable text, tabs and newlines: write it as the escape '{shown}' inside a string "
        "literal, or leave it out"
    )


def logged(value: Any) -> Any:
    """A copy for events and transcripts: `plain`, with every string printable and capped."""
    return plain(value, text=lambda s: printable(s, TEXT_CAP), chars=LOGGED_CAP)
