"""The numbers of `train.py` that the offline agents tune, and which they leave alone: seeds, sizes
of the problem, counts, run plumbing, names prepare.py defines. Module-level constants
(`LEARNING_RATE = 0.01`) and numeric keyword arguments of calls
(`LogisticRegression(C=1.0, max_iter=1000)`, as sklearn-style folders write their knobs). Shared
by `mutate` and `optuna`, so both read `train.py` the same way.
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


# Keyword arguments that are not knobs whatever the call: axes, formatting, plumbing.
_NOT_KNOB_KEYWORDS = {
    "axis", "dim", "keepdims", "ndim", "indent", "flush", "decimals", "ndigits", "timeout",
    "protocol", "dpi", "figsize", "fontsize", "linewidth", "lw", "markersize", "start", "stop",
    "end", "step", "base", "level", "width", "precision", "maxsplit", "max_workers", "chunksize",
    "default", "nrows", "skiprows", "header", "index_col", "ncols", "pad", "padding_idx",
    "ignore_index", "in_features", "in_channels", "num_embeddings", "fill_value", "minlength",
}  # fmt: skip
# Calls whose numbers are output, plumbing or arithmetic, never the model's knobs.
_NOT_KNOB_CALLS = {
    "print", "plt", "ax", "axes", "fig", "sns", "json", "os", "sys", "time", "logging", "logger",
    "log", "open", "range", "round", "enumerate", "zip", "len", "min", "max", "sum", "sorted",
    "int", "float", "str", "math", "re", "shutil", "subprocess", "argparse", "warnings",
    "seed", "manual_seed", "set_num_threads", "savefig", "figure", "subplots", "plot", "scatter",
    "hist", "legend", "to_csv", "to_parquet", "sleep", "join", "format", "add_argument",
}  # fmt: skip


@dataclass(frozen=True)
class Constant:
    name: str
    value: int | float
    line: str  # the text to replace exactly once: the whole line, or `name=value` in a call
    literal: str  # the literal's text within it
    keyword: bool = False  # a keyword argument of a call, not a module-level constant


def find_constants(source: str) -> list[Constant]:
    """Module-level `NAME = <number>` lines, and `name=<number>` keyword arguments of calls,
    whose literal is written on a single line; a name found twice is left out."""
    tree = _parse(source)
    if tree is None:
        return []
    lines = source.splitlines()
    found: list[Constant] = []
    for node in tree.body:
        target, value = _assignment(node)
        if target is None or value is None or value.lineno != value.end_lineno:
            continue
        number = _number(value)
        if number is None:
            continue
        line = lines[value.lineno - 1]
        literal = line[value.col_offset : value.end_col_offset]
        if source.count(line) == 1 and line.count(literal) == 1:
            found.append(Constant(target, number, line, literal))
        else:
            found.append(Constant(target, number, "", ""))  # counted, so a twin is left out
    for call in ast.walk(tree):
        if not isinstance(call, ast.Call) or _call_name(call.func) in _NOT_KNOB_CALLS:
            continue
        for keyword in call.keywords:
            value = keyword.value
            number = _number(value)
            if keyword.arg is None or number is None or keyword.lineno != value.end_lineno:
                continue
            if keyword.arg.lower() in _NOT_KNOB_KEYWORDS:
                continue
            line = lines[keyword.lineno - 1]
            anchor = line[keyword.col_offset : value.end_col_offset]
            literal = line[value.col_offset : value.end_col_offset]
            unique = source.count(anchor) == 1 and anchor.count(literal) == 1
            found.append(Constant(keyword.arg, number, anchor if unique else "", literal, True))
    counts: dict[str, int] = {}
    for constant in found:
        counts[constant.name] = counts.get(constant.name, 0) + 1
    state = _reassigned(tree)
    return [
        c for c in found if counts[c.name] == 1 and c.line and (c.keyword or c.name not in state)
    ]


def _reassigned(tree: ast.Module) -> set[str]:
    """Names assigned more than once anywhere (`step = 0` at the top, `step += 1` in the loop):
    the program's state, not a setting."""
    seen: dict[str, int] = {}
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign | ast.For | ast.comprehension):
            targets = [node.target]
        for target in targets:
            for name in ast.walk(target):
                if isinstance(name, ast.Name):
                    bump = 2 if isinstance(node, ast.AugAssign) else 1
                    seen[name.id] = seen.get(name.id, 0) + bump
        if isinstance(node, ast.Global | ast.Nonlocal):
            for declared in node.names:
                seen[declared] = seen.get(declared, 0) + 2
    return {name for name, count in seen.items() if count > 1}


def _parse(source: str) -> ast.Module | None:
    """The module, or for one line of a call's arguments (`    max_depth=6,`, as a diff shows
    it) that line as the arguments of a call."""
    try:
        return ast.parse(source)
    except SyntaxError:
        pass
    if "\n" in source.strip():
        return None
    try:
        return ast.parse(f"_({source.strip().rstrip(',')})")
    except SyntaxError:
        return None


def _call_name(func: ast.expr) -> str:
    """The name a call goes by for the lists above: `print`, `plt` of `plt.plot`, `seed` of
    `np.random.seed`."""
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        root = func
        while isinstance(root, ast.Attribute):
            root = root.value  # type: ignore[assignment]
        if isinstance(root, ast.Name) and root.id in _NOT_KNOB_CALLS:
            return root.id
        return func.attr
    return ""


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
