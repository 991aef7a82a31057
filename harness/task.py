"""The task folder contract: what is in it, and what `prepare.py` declares, read without running it.

`prepare.py` and `train.py` are never imported or executed on the host. Their settings are read
from the syntax tree: module-level constants (`METRIC = "val_loss"`) and whether a top-level
`def evaluate(output_dir)` exists.
"""

from __future__ import annotations

import ast
import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import TaskError
from harness.task_facts import (
    BudgetFacts,
    EvaluateShape,
    budget_facts,
    evaluate_shape,
    imports_from_prepare,
    printed_by_imported,
    printed_names,
    returned_keys,
)

PROGRAM, TRAIN, PREPARE, CONFIG, DOCKERFILE = (
    "program.md",
    "train.py",
    "prepare.py",
    "overnight.toml",
    "Dockerfile",
)
TASK_FILES = (PROGRAM, TRAIN, PREPARE)
PREPARE_CONSTANTS = (
    "METRIC",
    "DIRECTION",
    "TIME_BUDGET",
    "TIMEOUT",
    "HARD_TIMEOUT",
    "TRAIN_TIMEOUT",
    "RUN_TIMEOUT",
    "TIMEOUT_SECONDS",
)


@dataclass(frozen=True)
class Task:
    """A task folder, read: its texts and what `prepare.py` and `overnight.toml` declare."""

    root: Path
    program: str
    train_source: str
    prepare_source: str
    prepare_constants: dict[str, Any]
    evaluate: EvaluateShape | None  # prepare.py's top-level `def evaluate(...)`, if any
    train_uses_evaluate: bool  # train.py imports or calls prepare.py's evaluate itself
    budget: BudgetFacts  # where train.py takes its time budget from, under which name
    printed_names: tuple[str, ...]  # `name: value` lines train.py's source prints
    printed_by_prepare: tuple[str, ...]  # ...and prepare.py's functions that train.py calls
    returned_keys: tuple[str, ...]  # keys of the dicts evaluate() returns
    toml: dict[str, Any]
    has_dockerfile: bool

    @property
    def has_evaluate(self) -> bool:
        return self.evaluate is not None

    @property
    def inline_names(self) -> tuple[str, ...]:
        """The names an inline run may print: train.py's, then those of prepare.py's functions
        it calls."""
        extra = [n for n in self.printed_by_prepare if n not in self.printed_names]
        return (*self.printed_names, *extra)

    @property
    def printed_where(self) -> str:
        if any(n not in self.printed_names for n in self.printed_by_prepare):
            return "the print calls of train.py and of the prepare.py functions it calls"
        return "train.py's print calls"

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
        raise TaskError(_missing_files(root, missing))
    texts = {name: _read_text(root / name) for name in TASK_FILES}
    train = _check_syntax(root / TRAIN, texts[TRAIN])
    tree = _check_syntax(root / PREPARE, texts[PREPARE])
    budget = budget_facts(texts[TRAIN], train)
    return Task(
        root=root,
        program=texts[PROGRAM],
        train_source=texts[TRAIN],
        prepare_source=texts[PREPARE],
        prepare_constants=_module_constants(tree, (*PREPARE_CONSTANTS, budget.name)),
        evaluate=evaluate_shape(tree),
        train_uses_evaluate="evaluate" in imports_from_prepare(train),
        budget=budget,
        printed_names=tuple(printed_names(train)),
        printed_by_prepare=tuple(printed_by_imported(tree, imports_from_prepare(train))),
        returned_keys=tuple(returned_keys(tree)),
        toml=_read_toml(root / CONFIG),
        has_dockerfile=(root / DOCKERFILE).is_file(),
    )


_SEARCH_DEPTH = 3  # how far below a folder without the task files to look for them
_NOT_SEARCHED = {".git", ".overnight", ".venv", "venv", "node_modules", "__pycache__"}


def _missing_files(root: Path, missing: list[str]) -> str:
    """One line: which files are missing, and what to do (a subfolder that is the task folder,
    or the one file to add)."""
    found = task_folders_below(root)
    if found:
        shown = ", ".join(str(f) for f in found[:3]) + (" ..." if len(found) > 3 else "")
        return (
            f"{root}: missing {', '.join(missing)}; {shown} "
            f"{'holds' if len(found) == 1 else 'hold'} all of {', '.join(TASK_FILES)}: pass "
            f"{'that folder' if len(found) == 1 else 'one of them'} as the task folder"
        )
    if missing == [PREPARE]:
        return (
            f"{root}: missing prepare.py; add one next to train.py: it holds the fixed setup and "
            "evaluation and may be as small as `TIME_BUDGET = 300` (`python prepare.py` runs "
            "once as setup; data train.py reads from this folder is there already)"
        )
    edited = files_program_md_edits(root) if TRAIN in missing and PROGRAM not in missing else []
    if len(edited) == 1:
        return (
            f"{root}: missing train.py; program.md names {edited[0]} as the file to modify, and "
            f"overnight edits only train.py: rename {edited[0]} to train.py (and say so in "
            "program.md)"
        )
    if edited:
        return (
            f"{root}: missing train.py; program.md names {', '.join(edited)} as files to modify, "
            "and overnight edits one file, train.py: move what the agent may change into it"
        )
    return f"{root}: missing {', '.join(missing)}; a task folder holds {', '.join(TASK_FILES)}"


# "`solve.py` — the file you modify", "features.py — **you modify this.**", "Modify `solve.py`"
_EDITED = re.compile(
    r"`?([\w.-]+\.py)`?[^\n]{0,12}?\b(?:the (?:only )?file (?:you|the agent) (?:modify|edit|"
    r"change)|(?:you|the agent) (?:modify|edit|change)s? this|agent edits)"
    r"|\b(?:only )?(?:modify|edit) (?:only )?`([\w.-]+\.py)`",
    re.IGNORECASE,
)


def files_program_md_edits(root: Path) -> list[str]:
    """The Python files of the folder that program.md says the agent modifies."""
    try:
        program = (root / PROGRAM).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    found: list[str] = []
    for match in _EDITED.finditer(program.replace("*", "")):
        name = match.group(1) or match.group(2)
        if name not in (PREPARE, TRAIN) and name not in found and (root / name).is_file():
            found.append(name)
    return found


def task_folders_below(root: Path) -> list[Path]:
    """Folders up to _SEARCH_DEPTH below `root` that hold program.md, train.py and prepare.py."""
    found: list[Path] = []
    level = [root]
    for _ in range(_SEARCH_DEPTH):
        below: list[Path] = []
        for folder in level:
            try:
                children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink())
            except OSError:
                continue
            for child in children:
                if child.name in _NOT_SEARCHED or child.name.startswith("."):
                    continue
                if all((child / name).is_file() for name in TASK_FILES):
                    found.append(child)
                else:
                    below.append(child)
        level = below[:2000]
    return found


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


def _module_constants(tree: ast.Module, names: tuple[str, ...]) -> dict[str, Any]:
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
            if isinstance(target, ast.Name) and target.id in names and value is not None:
                try:
                    found[target.id] = _literal(value)
                except (ValueError, TypeError, ZeroDivisionError, OverflowError):
                    found[target.id] = NotLiteral(ast.unparse(value), _visible_default(value))
    return found


def _visible_default(node: ast.expr) -> Any:
    """The literal a computed constant falls back to, where one is visible:
    `int(os.environ.get("TIME_BUDGET", 300))`, `os.getenv("METRIC", "val_loss")`, `X or 300`."""
    for inner in ast.walk(node):
        candidate: ast.expr | None = None
        if isinstance(inner, ast.Call) and len(inner.args) >= 2:
            name = ast.unparse(inner.func)
            if name.endswith(("environ.get", "getenv")):
                candidate = inner.args[1]
        elif isinstance(inner, ast.BoolOp) and isinstance(inner.op, ast.Or):
            candidate = inner.values[-1]
        if candidate is None:
            continue
        try:
            value = _literal(candidate)
        except (ValueError, TypeError, ZeroDivisionError, OverflowError):
            continue
        if isinstance(value, str):
            try:
                return int(value) if value.strip().isdigit() else float(value)
            except ValueError:
                return value
        return value
    return None


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
    """A constant overnight cannot read without running code (`TIME_BUDGET = budget()`), with the
    literal it falls back to where one is visible in the expression."""

    expression: str
    default: Any = None


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(_read_text(path))
    except tomllib.TOMLDecodeError as err:
        raise TaskError(f"{path}: not valid TOML ({err}); fix the line it names") from err
