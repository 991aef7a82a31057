"""Which printed number is the metric, and which way is better, when nobody declared it.

karpathy's convention: train.py prints `name: value` lines (after a `---` line) and program.md
names the metric in prose ("get the lowest val_bpb"). `printed_metrics` reads such lines;
`infer_metric` picks the one program.md names, with its direction from the words around it,
or else from the name itself (loss -> minimize, accuracy -> maximize). It refuses only when the
choice is truly ambiguous, saying which names there were and which flag to add. Pure functions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from harness.errors import TaskError
from harness.seams import Direction

_NUMBER = (
    r"[-+]?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
    r"|[-+]?(?:nan|inf|infinity)"
)
_LINE = re.compile(
    rf"^[ \t]*([A-Za-z_][\w./@-]*)[ \t]*[:=][ \t]*({_NUMBER})[ \t]*%?[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)


def printed_metrics(output: str) -> dict[str, float]:
    """Every `name: number` (or `name=number`) line at the start of a line; the last value of
    each name wins, in order of first appearance. Carriage-return progress bars are lines too."""
    found: dict[str, float] = {}
    for name, number in _LINE.findall(output.replace("\r", "\n")):
        found[name] = float(number.replace(",", ""))
    return found


def printed_metric(output: str, metric: str) -> float | None:
    """The metric's last printed value, if finite (the name matched without regard to case)."""
    values = {name.lower(): value for name, value in printed_metrics(output).items()}
    value = values.get(metric.lower())
    return value if value is not None and math.isfinite(value) else None


@dataclass(frozen=True)
class Inferred:
    metric: str
    direction: Direction
    reason: str  # one line: why this metric and this direction


_MIN_WORDS = r"lowest|lower|minimi[sz]e[sd]?|minimi[sz]ing|minimum|smallest|smaller|reduce[sd]?|decrease[sd]?"
_MAX_WORDS = r"highest|higher|maximi[sz]e[sd]?|maximi[sz]ing|maximum|largest|larger|increase[sd]?"
_CUES = {
    Direction.MINIMIZE: re.compile(rf"\b(?:{_MIN_WORDS})\b", re.IGNORECASE),
    Direction.MAXIMIZE: re.compile(rf"\b(?:{_MAX_WORDS})\b", re.IGNORECASE),
}
_NEAR_CHARS = 24  # a direction word this close to a mention counts double

_NAME_WORDS = {
    Direction.MINIMIZE: {
        "loss", "error", "err", "mse", "rmse", "mae", "mape", "mase", "bpb", "bpc", "perplexity",
        "ppl", "nll", "wer", "cer", "regret", "drawdown", "cost", "seconds", "secs", "sec", "time",
        "latency", "runtime", "duration", "ms",
    },
    Direction.MAXIMIZE: {
        "accuracy", "acc", "score", "reward", "revenue", "sharpe", "sortino", "auc", "auroc", "f1",
        "precision", "recall", "map", "ndcg", "bleu", "rouge", "iou", "dice", "r2", "spearman",
        "pearson", "pnl", "profit", "return", "returns", "pass", "solved", "win", "winrate",
        "throughput", "speedup",
    },
}  # fmt: skip
_TIME_WORDS = {"seconds", "secs", "sec", "time", "latency", "runtime", "duration", "ms"}
_HELD_OUT = {"val", "valid", "validation", "test", "eval", "holdout", "heldout", "final"}
# A leading word that says which value of a quantity a name is: `trained_pass_at_1` is pass@1
# after training, so program.md's "pass@1" names it.
_QUALIFIERS = _HELD_OUT | {"trained", "best", "mean", "avg", "average", "overall", "new", "after"}
# A leading word that makes a name the reference or a difference, never the candidate's own
# value: `baseline_acc` beside `acc`, `delta_pass_at_1` beside `trained_pass_at_1`.
_REFERENCES = {
    "baseline", "base", "initial", "init", "start", "reference", "ref", "prev", "previous",
    "before", "pre", "delta", "diff", "change", "gain", "improvement",
}  # fmt: skip
_GOAL_TALK = re.compile(r"\b(?:metric|goal|objective|target|improve[sd]?|better)\b", re.I)
# A plain word printed as a setting (`model: gpt2`, `depth: 8`) names the goal only in code
# (`depth`) or right after a goal verb ("maximize fitness"), never as ordinary prose.
_GOAL_VERB = re.compile(
    r"\b(?:maximi[sz]e|minimi[sz]e|optimi[sz]e|lowest|highest|best)\W+(?:\w+\W+){0,2}$",
    re.IGNORECASE,
)


def infer_metric(
    names: Sequence[str],
    program: str,
    metric: str | None = None,
    direction: Direction | None = None,
    where: str = "train.py's output",
) -> Inferred:
    """The metric among `names` (what the baseline printed or evaluate returned) and its direction.

    A `metric` or `direction` already declared is kept; only what is missing is inferred.
    """
    if not names:
        raise TaskError(
            f"{where} has no `name: number` lines, so there is no metric to pick; print one "
            '(e.g. `print(f"val_loss: {loss:.6f}")`) or set metric and direction in overnight.toml'
        )
    if metric is not None:
        chosen = _declared(metric, names, where)
        why = f"{chosen} as declared"
    else:
        chosen, why = _choose(names, program, where)
    if direction is not None:
        return Inferred(chosen, direction, why)
    found, how = _direction(chosen, program)
    if found is None:
        raise TaskError(
            f"cannot tell whether {chosen} should go down or up (program.md does not say and the "
            f"name does not tell): add --direction minimize|maximize, or direction = ... in "
            "overnight.toml"
        )
    quote = how.removeprefix("program.md says ")
    if quote != how and quote in why:  # one sentence said both: quote it once
        return Inferred(chosen, found, f"{why.split(':', 1)[0]}, to {found.value}: {quote}")
    return Inferred(chosen, found, f"{why}; {found.value}: {how}")


def _declared(metric: str, names: Sequence[str], where: str) -> str:
    lowered = {n.lower(): n for n in names}
    if metric.lower() not in lowered:
        raise TaskError(
            f"the metric {metric!r} is not in {where}, which has: {', '.join(names)}; set metric "
            "to one of these (--metric, or metric in overnight.toml)"
        )
    return lowered[metric.lower()]


def _choose(names: Sequence[str], program: str, where: str) -> tuple[str, str]:
    names = _without_references(names)
    scored = {name: _mentions(name, program, as_goal=True) for name in names}
    strong = {n: s for n, (s, _, _) in scored.items() if s}
    if strong:
        ranked = sorted(strong, key=lambda n: strong[n], reverse=True)
        if len(ranked) == 1 or strong[ranked[0]] >= 2 * strong[ranked[1]]:
            return ranked[0], f'{ranked[0]} is the one program.md names: "{scored[ranked[0]][2]}"'
        return _ambiguous(names, where, f"program.md names {' and '.join(ranked[:3])} as goals")
    spelled = {s.lower() for n in names for s in _spellings(n)}
    missing = [g for g in _named_goals(program) if g.lower() not in spelled]
    if missing:  # the goal is something else: the output or program.md is out of date
        return _ambiguous(names, where, f"the goal program.md names, {missing[0]}, is not one")
    mentioned = {n: m for n, (_, m, _) in scored.items() if m}
    if len(mentioned) == 1:
        name = next(iter(mentioned))
        return name, f'{name} is the only one program.md mentions: "{scored[name][2]}"'
    pool = list(mentioned) or list(names)
    quality = [n for n in pool if _name_direction(n) is not None and not _is_time(n)]
    held_out = [n for n in quality if _parts(n) & _HELD_OUT]
    for group, what in ((quality, "metric"), (held_out, "held-out metric"), (pool, "")):
        if len(group) == 1 and (what or _name_direction(group[0]) is not None):
            return group[0], f"{group[0]} is the only {what or 'metric-like name'} printed"
    timings = [n for n in pool if _is_time(n)]
    if not quality and len(timings) == 1:
        return timings[0], f"{timings[0]} is the only timing printed"
    return _ambiguous(names, where, "program.md names none of them as the goal")


_GOAL_NAME = re.compile(
    r"\b(?:lowest|highest|maximi[sz]e|minimi[sz]e|optimi[sz]e)\s+(?:the\s+)?`?"
    r"([A-Za-z][\w@.]*_[\w@.]*|[A-Za-z]\w*@\w+)`?",
    re.IGNORECASE,
)


def _named_goals(program: str) -> list[str]:
    """Identifiers program.md sets as the goal ("get the highest val_auc")."""
    return list(dict.fromkeys(m.group(1).rstrip(".") for m in _GOAL_NAME.finditer(program)))


def _ambiguous(names: Sequence[str], where: str, why: str) -> tuple[str, str]:
    likely = [n for n in names if _name_direction(n) is not None and not _is_time(n)]
    example = ([n for n in likely if _parts(n) & _HELD_OUT] or likely or list(names))[0]
    raise TaskError(
        f"cannot tell which number is the metric: {where} has {', '.join(names)} and {why}; "
        f"add --metric NAME (e.g. --metric {example}) or metric = ... in overnight.toml"
    )


def _without_references(names: Sequence[str]) -> list[str]:
    """The names less each baseline or difference of a quantity also printed as itself."""
    cores = {_core(n) for n in names if _parts_list(n)[:1] and _parts_list(n)[0] not in _REFERENCES}
    return [
        n
        for n in names
        if not (_parts_list(n) and _parts_list(n)[0] in _REFERENCES and _core(n) in cores)
    ] or list(names)


def _core(name: str) -> str:
    """The name without one leading qualifier or reference word: `trained_pass_at_1` ->
    `pass_at_1`."""
    parts = re.split(r"[_.-]", name, maxsplit=1)
    if len(parts) == 2 and parts[0].lower() in _QUALIFIERS | _REFERENCES and parts[1]:
        return parts[1]
    return name


def _spellings(name: str) -> list[str]:
    """How program.md may write a printed name: as printed, `pass_at_1` as pass@1, and the
    same without a leading qualifier (when that leaves more than a plain word)."""
    found = [name]
    core = _core(name)
    if core != name and not _is_plain(core):
        found.append(core)
    for spelled in list(found):
        at = re.sub(r"_at_(?=\w)", "@", spelled, flags=re.IGNORECASE)
        if at != spelled:
            found.append(at)
    return found


def _mention_pattern(name: str) -> re.Pattern[str]:
    spelled = "|".join(re.escape(s) for s in sorted(_spellings(name), key=len, reverse=True))
    return re.compile(rf"(?<![\w.@])(?:{spelled})(?![\w@])", re.IGNORECASE)


def _is_plain(name: str) -> bool:
    """An ordinary word (`model`, `depth`), which prose uses for other things."""
    return name.isalpha()


def _counts_as_goal(name: str, program: str, start: int, end: int) -> bool:
    if not _is_plain(name) or _name_direction(name) is not None:
        return True
    in_code = program[start - 1 : start] == "`" and program[end : end + 1] == "`"
    return in_code or bool(_GOAL_VERB.search(program, max(0, start - 40), start))


def _mentions(name: str, program: str, as_goal: bool = False) -> tuple[int, int, str]:
    """(mentions with a direction word nearby, all mentions, the first telling snippet).
    `as_goal`: only mentions that could name the goal (see _counts_as_goal)."""
    pattern = _mention_pattern(name)
    strong, total, telling, first = 0, 0, "", ""
    code = _fenced_spans(program) if as_goal else []
    for match in pattern.finditer(program):
        if as_goal and not _counts_as_goal(name, program, match.start(), match.end()):
            continue
        if any(start <= match.start() < end for start, end in code):
            continue  # an example of the output lists every name: it names no goal
        total += 1
        said = _snippet(program, match.start(), match.end())
        if not first or (not _GOAL_TALK.search(first) and _GOAL_TALK.search(said)):
            first = said  # the first mention, or the first that talks about the goal
        if _nearest_cue(program, match.start(), match.end()) is not None:
            strong += 1
            telling = telling or _snippet(program, match.start(), match.end())
    return strong, total, telling or first


def _fenced_spans(program: str) -> list[tuple[int, int]]:
    """Where program.md's fenced code blocks (```) are."""
    return [m.span() for m in re.finditer(r"^```.*?^```", program, re.MULTILINE | re.DOTALL)]


def _direction(name: str, program: str) -> tuple[Direction | None, str]:
    pattern = _mention_pattern(name)
    votes = {Direction.MINIMIZE: 0, Direction.MAXIMIZE: 0}
    quotes: dict[Direction, str] = {}
    for match in pattern.finditer(program):
        found = _nearest_cue(program, match.start(), match.end())
        if found is not None:
            direction, weight = found
            votes[direction] += weight
            quotes.setdefault(direction, _snippet(program, match.start(), match.end()))
    low, high = votes[Direction.MINIMIZE], votes[Direction.MAXIMIZE]
    if low != high:
        winner = Direction.MINIMIZE if low > high else Direction.MAXIMIZE
        return winner, f'program.md says "{quotes[winner]}"'
    by_name = _name_direction(name)
    if by_name is not None:
        return by_name, f"from the name {name}"
    return None, ""


def _nearest_cue(text: str, start: int, end: int) -> tuple[Direction, int] | None:
    """The direction word nearest to a mention within its sentence, weighted 2 when close."""
    left, right = _sentence(text, start, end)
    best: tuple[int, Direction] | None = None
    for direction, cue in _CUES.items():
        for match in cue.finditer(text, left, right):
            distance = start - match.end() if match.end() <= start else match.start() - end
            if best is None or distance < best[0]:
                best = (max(distance, 0), direction)
    if best is None:
        return None
    return best[1], 2 if best[0] <= _NEAR_CHARS else 1


def _sentence(text: str, start: int, end: int) -> tuple[int, int]:
    left = max(text.rfind(c, 0, start) for c in ".!?\n") + 1
    right = min((i for i in (text.find(c, end) for c in ".!?\n") if i != -1), default=len(text))
    return left, right


def _name_direction(name: str) -> Direction | None:
    parts = _parts(name)
    hits = {d for d, words in _NAME_WORDS.items() if parts & words}
    return hits.pop() if len(hits) == 1 else None


def _is_time(name: str) -> bool:
    return bool(_parts(name) & _TIME_WORDS)


def _parts(name: str) -> set[str]:
    return set(_parts_list(name))


def _parts_list(name: str) -> list[str]:
    return [p for p in re.split(r"[^a-z0-9]+", name.lower()) if p]


def _snippet(text: str, start: int, end: int) -> str:
    """The sentence around a mention, on one line, at most ~100 characters."""
    left, right = _sentence(text, start, end)
    sentence = " ".join(text[left:right].replace("*", "").split())
    if len(sentence) <= 100:
        return sentence
    at = sentence.lower().find(text[start:end].lower())
    begin = max(0, at - 45)
    return ("…" if begin else "") + sentence[begin : begin + 95].strip() + "…"
