"""The numeric module-level constants of `train.py` that the offline agents tune, and which they
leave alone: seeds, sizes of the problem, counts, run plumbing, names prepare.py defines. Shared by
`mutate` and `optuna`, so both read `train.py` the same way.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

# Constants that are not knobs: seeds, sizes of the problem, counts of things, run plumbing.
_NOT_KNOBS = re.compile(
    r"(?:^|_)(?:seed|random_state|rng)(?:_|$)"
    r"|^(?:n|m|k|num|count|size)$"
    r"|^(?:n|num|number_of)_?(?:samples|features|classes|labels|train|test|val|valid|points|items"
    r"|rows|cols|columns|inputs|outputs|examples|assets|bars|days|series|tokens|targets)$"
    r"|(?:^|_)(?:vocab_size|input_dim|output_dim|n_in|n_out|image_size|img_size|num_workers|n_jobs"
    r"|workers|threads|port|verbose|verbosity|debug|device|gpu|gpus|rank|world_size)(?:_|$)"
    r"|(?:^|_)(?:log|print|eval|save|checkpoint|report)_(?:every|interval|freq|steps)$",
    re.IGNORECASE,
)
# Values that must stay in [0, 1]: probabilities and fractions.
_UNIT_INTERVAL = re.compile(
    r"dropout|prob|proba|frac|fraction|ratio|momentum|beta\d?|smoothing|keep|(?:^|_)p(?:_|$)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Constant:
    name: str
    value: int | float
    line: str  # the whole source line, to replace it exactly once
    literal: str  # the literal's text within the line


def find_constants(source: str) -> list[Constant]:
    """Module-level `NAME = <number>` lines whose literal is written on that single line."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    lines = source.splitlines()
    found: dict[str, Constant] = {}
    seen_twice: set[str] = set()
    for node in tree.body:
        target, value = _assignment(node)
        if target is None or value is None or value.lineno != value.end_lineno:
            continue
        number = _number(value)
        if number is None:
            continue
        line = lines[value.lineno - 1]
        literal = line[value.col_offset : value.end_col_offset]
        if target in found:
            seen_twice.add(target)
        if source.count(line) == 1 and line.count(literal) == 1:
            found[target] = Constant(target, number, line, literal)
    return [c for name, c in found.items() if name not in seen_twice]


def knobs(constants: list[Constant], prepare_source: str) -> list[Constant]:
    """The constants worth tuning: not a seed, a size or count of the problem, run plumbing, or
    a name prepare.py defines too (a setting the evaluator fixes)."""
    fixed = {c.name for c in find_constants(prepare_source)}
    return [c for c in constants if not _NOT_KNOBS.search(c.name) and c.name not in fixed]


def _assignment(node: ast.stmt) -> tuple[str | None, ast.expr | None]:
    if (
        isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
    ):
        return node.targets[0].id, node.value
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
        return node.target.id, node.value
    return None, None


def _number(node: ast.expr) -> int | float | None:
    sign = 1
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        sign, node = -1, node.operand
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        number: int | float = node.value  # type: ignore[assignment]
        return sign * number
    return None


def in_unit_interval(constant: Constant) -> bool:
    """A probability or a fraction (by its name and a float value in [0, 1]): it stays in [0, 1]."""
    value = constant.value
    return (
        isinstance(value, float)
        and 0.0 <= value <= 1.0
        and bool(_UNIT_INTERVAL.search(constant.name))
    )


def round_number(value: float) -> float:
    """Four significant digits, as the agents write values into train.py."""
    return float(f"{value:.4g}")


def format_number(value: int | float) -> str:
    """A Python literal for the value: ints as ints, floats with a point or an exponent."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    text = f"{value:.4g}"
    return text if any(ch in text for ch in ".en") else text + ".0"
