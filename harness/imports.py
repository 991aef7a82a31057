"""The modules a task's `prepare.py` and `train.py` import at load time, read from the syntax tree.

Nothing is run: only statements that execute when the file runs are read (the module body and
what `if`, `try`, `with`, `for`, `while` and class bodies hold there; never function bodies).
Relative imports, the task folder's own modules and the harness's are left out; an import inside
`try: ... except ImportError:` is optional, and one under `if TYPE_CHECKING:` never runs.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PROVIDED = frozenset({"__future__", "prepare", "train", "overnight_eval"})  # always importable
_GUARDS = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})

# Import names whose package on PyPI has another name (the common cases).
PACKAGE_NAMES = {
    "attr": "attrs",
    "bs4": "beautifulsoup4",
    "Crypto": "pycryptodome",
    "cv2": "opencv-python",
    "dateutil": "python-dateutil",
    "dns": "dnspython",
    "docx": "python-docx",
    "dotenv": "python-dotenv",
    "faiss": "faiss-cpu",
    "fitz": "pymupdf",
    "git": "GitPython",
    "google": "protobuf",
    "jwt": "PyJWT",
    "magic": "python-magic",
    "mpl_toolkits": "matplotlib",
    "OpenSSL": "pyOpenSSL",
    "PIL": "pillow",
    "pkg_resources": "setuptools",
    "serial": "pyserial",
    "skimage": "scikit-image",
    "sklearn": "scikit-learn",
    "websocket": "websocket-client",
    "yaml": "pyyaml",
    "zmq": "pyzmq",
}


@dataclass(frozen=True)
class Import:
    """One top-level module a task file imports."""

    module: str  # the top-level name: `numpy` for `import numpy.linalg`
    file: str  # prepare.py or train.py
    line: int
    optional: bool  # inside try/except ImportError: the file copes without it

    @property
    def package(self) -> str:
        """The name to install it by."""
        return PACKAGE_NAMES.get(self.module, self.module)


def task_imports(task_dir: Path, sources: dict[str, str]) -> list[Import]:
    """The imports of each file (name -> source), one per module: required if any is required."""
    local = local_modules(task_dir)
    found: dict[str, Import] = {}
    for name, source in sources.items():
        for item in file_imports(name, source):
            if item.module in local or item.module in PROVIDED:
                continue
            before = found.get(item.module)
            if before is None or (before.optional and not item.optional):
                found[item.module] = item
    return sorted(found.values(), key=lambda i: (i.file, i.line))


def local_modules(task_dir: Path) -> set[str]:
    """Names the task folder itself provides: `name.py` files and package folders."""
    names = set()
    for path in task_dir.iterdir() if task_dir.is_dir() else ():
        if path.suffix == ".py" and path.is_file():
            names.add(path.stem)
        elif path.is_dir() and not path.name.startswith("."):
            names.add(path.name)
    return names


def file_imports(name: str, source: str) -> list[Import]:
    """Every load-time import of one file, in order, before any filtering."""
    tree = ast.parse(source, filename=name)
    return [
        Import(module, name, node.lineno, optional)
        for node, optional in _walk(tree.body, optional=False)
        for module in _modules(node)
    ]


def _walk(body: list[ast.stmt], optional: bool) -> Iterator[tuple[ast.stmt, bool]]:
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, optional
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _walk(node.body, optional)
            yield from _walk(node.orelse, optional)
        elif isinstance(node, ast.Try | ast.TryStar):
            yield from _walk(node.body, optional or any(map(_guards, node.handlers)))
            for handler in node.handlers:
                yield from _walk(handler.body, optional)
            yield from _walk(node.orelse, optional)
            yield from _walk(node.finalbody, optional)
        elif isinstance(node, ast.With | ast.For | ast.While | ast.ClassDef):
            yield from _walk(node.body, optional)
            yield from _walk(getattr(node, "orelse", []), optional)


def _modules(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name.split(".")[0] for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return [node.module.split(".")[0]]
    return []  # a relative import


def _guards(handler: ast.ExceptHandler) -> bool:
    """Whether this `except` catches a failed import."""
    if handler.type is None:
        return True
    names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(_name(n) in _GUARDS for n in names)


def _is_type_checking(test: ast.expr) -> bool:
    return _name(test) == "TYPE_CHECKING"


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""
