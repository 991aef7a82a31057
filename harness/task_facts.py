"""What a task's sources say about themselves, read from the syntax tree without running them.

Facts that decide how a night runs a folder written by someone else: the shape of `evaluate`,
whether train.py calls prepare.py's evaluation itself, where train.py takes its time budget
from, which metric names it prints, and hints for `validate` (GPU, network, where data goes).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True)
class EvaluateShape:
    """prepare.py's top-level `def evaluate(...)`: its parameters as written."""

    params: tuple[str, ...]  # every parameter, positional ones first
    required: int  # parameters without a default
    variadic: bool  # *args or **kwargs

    @property
    def takes_output_dir(self) -> bool:
        """`evaluate(output_dir)`: one required parameter, the folder train.py wrote. Further
        optional ones are allowed only when the first one's name says it is a folder, so that
        `evaluate(fn, data=None)`, called by train.py itself, is not taken for it."""
        if self.required != 1 or self.variadic:
            return False
        return len(self.params) == 1 or bool(
            re.search(r"dir|path|folder|out", self.params[0], re.IGNORECASE)
        )

    def signature(self) -> str:
        return f"evaluate({', '.join(self.params)}{', ...' if self.variadic else ''})"


def evaluate_shape(tree: ast.Module) -> EvaluateShape | None:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "evaluate":
            args = node.args
            positional = [*args.posonlyargs, *args.args]
            params = tuple(a.arg for a in [*positional, *args.kwonlyargs])
            defaults = len(args.defaults) + sum(d is not None for d in args.kw_defaults)
            variadic = args.vararg is not None or args.kwarg is not None
            return EvaluateShape(params, len(params) - defaults, variadic)
    return None


def imports_from_prepare(tree: ast.Module) -> set[str]:
    """Names train.py takes from prepare: `from prepare import X` and `prepare.X` attributes."""
    names: set[str] = set()
    aliases = {"prepare"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "prepare" and not node.level:
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            aliases |= {a.asname or a.name for a in node.names if a.name == "prepare"}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
        ):
            names.add(node.attr)
    return names


class BudgetSource(StrEnum):
    """Where train.py takes its time budget from, which decides whether an override reaches it."""

    PREPARE = (
        "prepare"  # imports TIME_BUDGET (or the like) from prepare.py: overrides cannot reach it
    )
    TRAIN = "train"  # sets its own TIME_BUDGET (or the like): overrides cannot reach it
    ENVIRONMENT = "environment"  # reads OVERNIGHT_TIME_BUDGET: overrides reach it
    NONE = "none"  # neither: the budget is only the hard timeout's basis


@dataclass(frozen=True)
class BudgetFacts:
    source: BudgetSource
    name: str = "TIME_BUDGET"  # the constant train.py uses: imported from prepare.py, or its own
    value: object = None  # train.py's own literal value (BudgetSource.TRAIN)


def budget_facts(train_source: str, train_tree: ast.Module) -> BudgetFacts:
    if "OVERNIGHT_TIME_BUDGET" in train_source:
        return BudgetFacts(BudgetSource.ENVIRONMENT)
    imported = sorted(imports_from_prepare(train_tree))
    for name in ["TIME_BUDGET", *imported]:
        if name in imported and is_budget_name(name):
            return BudgetFacts(BudgetSource.PREPARE, name)
    for node in train_tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and is_budget_name(target.id):
                try:
                    value = ast.literal_eval(node.value)
                except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                    continue
                if isinstance(value, int | float) and not isinstance(value, bool):
                    return BudgetFacts(BudgetSource.TRAIN, target.id, value)
    return BudgetFacts(BudgetSource.NONE)


_TIME_PARTS = {"time", "seconds", "secs", "sec", "minutes", "mins", "hours", "wallclock"}
_BUDGET_PARTS = {"limit", "max", "train", "training", "run", "wall", "total"}
_NOT_BUDGET = {"timeout", "eval", "evaluation", "test", "per", "step", "epoch", "warmup", "log"}


def is_budget_name(name: str) -> bool:
    """An upper-case constant that names the training's time budget: TIME_BUDGET,
    TRAIN_BUDGET_SECONDS, TIME_LIMIT, MAX_TRAIN_SECONDS, TRAINING_TIME_MINUTES."""
    if not name.isupper():
        return False
    parts = set(name.lower().split("_"))
    if parts & _NOT_BUDGET:
        return False
    return "budget" in parts or bool(parts & _TIME_PARTS and parts & _BUDGET_PARTS)


def budget_seconds(name: str, value: float) -> float:
    """A budget's value in seconds, from the unit its name gives (TIME_BUDGET_MINUTES = 5)."""
    parts = set(name.lower().split("_"))
    if parts & {"minutes", "mins", "minute"}:
        return value * 60
    if parts & {"hours", "hrs", "hour"}:
        return value * 3600
    if parts & {"ms", "millis", "milliseconds"}:
        return value / 1000
    return value


# `print(f"val_bpb:   {x:.6f}")`, `print("loss:", x)`, `print(f"loss={x}")`: the name before : or =
_PRINTED_NAME = re.compile(r"^\s*([A-Za-z_][\w./@-]*)\s*[:=]\s*$")


def printed_names(tree: ast.Module) -> list[str]:
    """Metric-like names train.py prints as `name: value` (or `name=value`), in source order."""
    names: list[str] = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "print"
            and node.args
        ):
            continue
        name = _leading_name(node.args[0], more=len(node.args) > 1)
        if name and name not in names:
            names.append(name)
    return names


def printed_by_imported(prepare: ast.Module, imported: set[str]) -> list[str]:
    """Names printed by prepare.py's top-level functions that train.py imports, and by the
    functions of prepare.py those call (karpathy-like folders whose fixed `evaluate()` prints
    the summary block)."""
    functions = {
        node.name: node
        for node in prepare.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    todo, seen = [name for name in sorted(imported) if name in functions], set()
    names: list[str] = []
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        seen.add(name)
        body = ast.Module(body=[functions[name]], type_ignores=[])
        names += [n for n in printed_names(body) if n not in names]
        calls = [n.func for n in ast.walk(functions[name]) if isinstance(n, ast.Call)]
        todo += [c.id for c in calls if isinstance(c, ast.Name) and c.id in functions]
    return names


def _leading_name(first: ast.expr, more: bool) -> str | None:
    if isinstance(first, ast.JoinedStr) and len(first.values) >= 2:
        head, value = first.values[0], first.values[1]
        if isinstance(head, ast.Constant) and isinstance(value, ast.FormattedValue):
            match = _PRINTED_NAME.match(str(head.value))
            return match.group(1) if match else None
    if more and isinstance(first, ast.Constant) and isinstance(first.value, str):
        match = _PRINTED_NAME.match(first.value)
        return match.group(1) if match else None
    return None


def returned_keys(tree: ast.Module) -> list[str]:
    """The string keys of dict literals that prepare.py's `evaluate` returns."""
    keys: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "evaluate":
            for inner in ast.walk(node):
                if isinstance(inner, ast.Return) and isinstance(inner.value, ast.Dict):
                    for key in inner.value.keys:
                        if isinstance(key, ast.Constant) and isinstance(key.value, str):
                            keys.append(key.value)
    return list(dict.fromkeys(keys))


_CUDA = re.compile(r"\.cuda\(|torch\.cuda\.|[\"']cuda(?::\d)?[\"']|device_map\s*=\s*[\"']auto")
# A device chosen at run time: `torch.cuda.is_available()`, `"cuda" if ... else "cpu"`.
_CPU_FALLBACK = re.compile(r"is_available\(\)|else\s+[\"']cpu[\"']|[\"']cpu[\"']\s+if\b")


def gpu_requirement(train_source: str) -> str | None:
    """Why train.py needs a GPU, or None: CUDA used without any CPU fallback in sight."""
    if not _CUDA.search(train_source) or _CPU_FALLBACK.search(train_source):
        return None
    return "uses CUDA with no CPU fallback"


# Top-level modules that fetch from the network when used (a hint, never a refusal).
NETWORK_MODULES = (
    "requests",
    "httpx",
    "urllib3",
    "aiohttp",
    "huggingface_hub",
    "datasets",
    "transformers",
    "sentence_transformers",
    "timm",
    "torchvision",
    "tensorflow_datasets",
    "kagglehub",
    "openml",
    "nltk",
    "kernels",
    "wandb",
    "yfinance",
    "kaggle",
    "gdown",
    "boto3",
)


def network_modules(tree: ast.Module) -> list[str]:
    """Modules of NETWORK_MODULES a source imports (plus urllib.request), in source order."""
    found: list[str] = []
    for node in ast.walk(tree):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules = [node.module]
        for module in modules:
            top = "urllib.request" if module.startswith("urllib.request") else module.split(".")[0]
            if (top in NETWORK_MODULES or top == "urllib.request") and top not in found:
                found.append(top)
    return found


def does_work_when_run(tree: ast.Module) -> bool:
    """Whether `python prepare.py` does anything beyond defining names: an
    `if __name__ == "__main__":` block, or a top-level call, loop, `with` or `if`."""
    for node in tree.body:
        if isinstance(node, ast.Expr) and not isinstance(node.value, ast.Constant):
            return True
        if isinstance(node, ast.For | ast.While | ast.With | ast.If | ast.Try):
            return True
    return False


_DOCKER = re.compile(
    r"^\s*(?:import|from)\s+docker\b|[\[(,]\s*[\"']docker[\"']|[\"']docker\s", re.M
)


def runs_docker(source: str) -> bool:
    """Whether a source starts Docker itself (`subprocess.run(["docker", ...])`, the SDK)."""
    return bool(_DOCKER.search(source))


def writes_home(source: str) -> bool:
    """Whether a source builds paths under the home folder (`~`, Path.home(), $HOME)."""
    return bool(re.search(r"expanduser\(|Path\.home\(\)|[\"']HOME[\"']|[\"']~/", source))


def writes_next_to_itself(source: str) -> bool:
    """Whether a source builds paths next to its own file (`os.path.dirname(__file__)`)."""
    return "__file__" in source
