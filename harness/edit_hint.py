"""The hint for a `str_replace` whose old_str matches nothing: the nearest lines of train.py.

Its cost is bounded whatever the sizes: one pass over train.py and over the first
`ANCHORS` lines of old_str, a dictionary lookup per anchor, and close comparisons (difflib)
of at most `CLOSE` line pairs of at most `WIDTH` characters. Never a comparison per window.
"""

from __future__ import annotations

import difflib
import heapq
import re
from collections import Counter

ANCHORS = 200  # old_str lines looked up in train.py
COMMON = 20  # an old_str line found more often than this says nothing about where
CLOSE = 50  # train.py lines compared closely with old_str's most telling line
WIDTH = 200  # characters of a line compared
SHOWN = 20  # lines of the nearest place shown, besides the context
CONTEXT = 5  # lines shown before and after it
_WORD = re.compile(r"\w+")


def nearest(source: str, old: str, new: str | None) -> str:
    """What to tell the model: the nearest lines with context, and whether new_str is there."""
    lines = source.splitlines()
    wanted = old.splitlines()[:ANCHORS] or [old]
    found = _aligned(lines, wanted) or _similar(lines, wanted)
    hint = (
        _shown(lines, found, len(old.splitlines()))
        if found is not None
        else " Use `view` to see the current text."
    )
    if new and new in source:
        line = source.count("\n", 0, source.find(new)) + 1
        hint += (
            f"\nnew_str is already in train.py (from line {line}): the change may be made already."
        )
    return hint


def _key(line: str) -> str:
    return " ".join(line[:WIDTH].split())


def _aligned(lines: list[str], wanted: list[str]) -> int | None:
    """Where most old_str lines sit in train.py, whitespace aside (the first line's index)."""
    keys = {_key(w) for w in wanted} - {""}
    where: dict[str, list[int]] = {}
    for number, line in enumerate(lines):
        key = _key(line)
        if key in keys:
            where.setdefault(key, []).append(number)
    votes: Counter[int] = Counter()
    useful = 0
    for offset, line in enumerate(wanted):
        places = where.get(_key(line), [])
        if 0 < len(places) <= COMMON:
            useful += 1
            votes.update(at - offset for at in places)
    if not votes:
        return None
    start, count = max(votes.items(), key=lambda item: (item[1], -item[0]))
    return max(0, start) if count * 3 >= useful else None


def _similar(lines: list[str], wanted: list[str]) -> int | None:
    """Where old_str's longest line is most like a line of train.py (a typo, say)."""
    offset, anchor = max(enumerate(_key(w) for w in wanted), key=lambda item: len(item[1]))
    words = set(_WORD.findall(anchor))
    if not words:
        return None
    scored = (
        (len(words.intersection(_WORD.findall(line[:WIDTH]))), -n) for n, line in enumerate(lines)
    )
    candidates = [-n for shared, n in heapq.nlargest(CLOSE, scored) if shared]
    best, best_at = 0.0, -1
    for number in candidates:
        ratio = difflib.SequenceMatcher(None, _key(lines[number]), anchor).ratio()
        if ratio > best:
            best, best_at = ratio, number
    return max(0, best_at - offset) if best >= 0.6 else None


def _shown(lines: list[str], start: int, width: int) -> str:
    end = min(len(lines), start + max(1, width))
    last_shown = min(end, start + SHOWN)
    first, after = max(0, start - CONTEXT), min(len(lines), last_shown + CONTEXT)
    shown = "\n".join(f"{n + 1:6}\t{_cut(lines[n])}" for n in range(first, after))
    more = f"\n(and {end - last_shown} more lines like old_str's)" if end > last_shown else ""
    where = f"line {end}" if end == start + 1 else f"lines {start + 1}-{end}"
    return (
        f" Did you mean {where}? Here with {CONTEXT} lines around (old_str must match whitespace "
        f"and characters exactly):\n{shown}{more}"
    )


def _cut(line: str, limit: int = 1000) -> str:
    return (
        line if len(line) <= limit else line[:limit] + f" [... {len(line) - limit} more characters]"
    )
