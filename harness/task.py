"""The task folder contract: what is in it, and what `prepare.py` declares, read without running it.

`prepare.py` and `train.py` are never imported or executed on the host. Their settings are read
from the syntax tree: module-level constants (`METRIC = "val_loss"`) and whether a top-level
`def evaluate(output_dir)` exists.
"""

from __future__ import annotations

import ast
import hashlib
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import TaskError

PROGRAM, TRAIN, PREPARE, CONFIG, DOCKERFILE = (
    "program.md",
    "train.py",
    "prepare.py",
    "overnight.toml",
    "Dockerfile",
)
TASK_FILES = (PROGRAM, TRAIN, PREPARE)
PREPARE_CONSTANTS = ("METRIC", "DIRECTION", "TIME_BUDGET", "TIMEOUT")


@dataclass(frozen=True)
class Task:
    """A task folder, read: its texts and what `prepare.py` and `overnight.toml` declare."""

    root: Path
    program: str
    train_source: str
    prepare_source: str
    prepare_constants: dict[str, Any]
    has_evaluate: bool
    toml: dict[str, Any]
    has_dockerfile: bool

    @property
    def prepare_hash(self) -> str:
        return hashlib.sha256(self.prepare_source.encode()).hexdigest()


def load_task(root: Path) -> Task:
    root = root.resolve()
    if not root.is_dir():
        raise TaskError(
            f"{root}: not a folder; pass the task folder that holds {', '.join(TASK_FILES)}"
        )
    missing = [name for name in TASK_FILES if not (root / name).is_file()]
    if missing:
        raise TaskError(
            f"{root}: missing {', '.join(missing)}; a task folder holds {', '.join(TASK_FILES)}"
        )
    texts = {name: _read_text(root / name) for name in TASK_FILES}
    _check_syntax(root / TRAIN, texts[TRAIN])
    tree = _check_syntax(root / PREPARE, texts[PREPARE])
    return Task(
        root=root,
        program=texts[PROGRAM],
        train_source=texts[TRAIN],
        prepare_source=texts[PREPARE],
        prepare_constants=_module_constants(tree),
        has_evaluate=_has_evaluate(tree),
        toml=_read_toml(root / CONFIG),
        has_dockerfile=(root / DOCKERFILE).is_file(),
    )


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise TaskError(f"{path}: not UTF-8 text ({err.reason}); save it as UTF-8") from err


def _check_syntax(path: Path, source: str) -> ast.Module:
    try:
        return ast.parse(source, filename=str(path))
    except SyntaxError as err:
        raise TaskError(
            f"{path}:{err.lineno}: syntax error ({err.msg}); fix it before starting a run"
        ) from err


def _module_constants(tree: ast.Module) -> dict[str, Any]:
    """Module-level `NAME = <literal>` assignments for the names overnight reads."""
    found: dict[str, Any] = {}
    for node in tree.body:
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        for target in targets:
            if (
                isinstance(target, ast.Name)
                and target.id in PREPARE_CONSTANTS
                and value is not None
            ):
                try:
                    found[target.id] = _literal(value)
                except (ValueError, TypeError, ZeroDivisionError, OverflowError):
                    found[target.id] = NotLiteral(ast.unparse(value))
    return found


_ARITHMETIC = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}


def _literal(node: ast.expr) -> Any:
    """A literal, or plain arithmetic on numbers (`5 * 60`), without running anything."""
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        left, right = _literal(node.left), _literal(node.right)
        if isinstance(left, int | float) and isinstance(right, int | float):
            return _ARITHMETIC[type(node.op)](left, right)
        raise ValueError("not arithmetic on numbers")
    return ast.literal_eval(node)


@dataclass(frozen=True)
class NotLiteral:
    """A constant overnight cannot read without running code (e.g. `TIME_BUDGET = 5 * 60`)."""

    expression: str


def _has_evaluate(tree: ast.Module) -> bool:
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "evaluate"
        for node in tree.body
    )


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(_read_text(path))
    except tomllib.TOMLDecodeError as err:
        raise TaskError(f"{path}: not valid TOML ({err}); fix the line it names") from err
