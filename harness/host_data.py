"""Data the author keeps beside the task but out of git, which the task's code reads.

A checkout often holds inputs that git ignores: `data/` synced from a bucket, a parquet file
fetched by hand. `python prepare.py && python train.py` works there because the files are on
disk, but setup starts from the folder as git sees it, so they would be missing. A top-level
entry that git ignores and that a Python file of the task names in a string (`"data"`,
`"data/train.csv"`, `Path(__file__).parent / "data"`) comes along as in the checkout: copied
into setup's folder when it is at most COPY_LIMIT bytes (prepare.py may rewrite it, as it
would there), else shown to every container read-only at the same path without copying it.
Hidden entries (`.env`, `.cache`, `.venv`) never come: they hold secrets and tool state.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Ignored folders that are environments or caches of tools, never a task's input.
_TOOL_FOLDERS = {"venv", "env", "node_modules", "__pycache__", "build", "dist", "wandb"}
_WALK_LIMIT = 200_000  # files looked at per entry for the fingerprint and the permissions
COPY_LIMIT = 2**30  # an entry up to this size is copied into setup's folder, a larger one mounted


@dataclass(frozen=True)
class HostEntry:
    name: str  # relative to the task folder: a top-level entry, or one inside a tracked folder
    path: Path  # where it is on this machine (a symbolic link resolved)
    named_by: str  # the file that names it
    is_dir: bool
    size: int  # bytes in its regular files

    @property
    def copied(self) -> bool:
        """Copied into setup's writable folder; otherwise mounted read-only where it lies."""
        return self.size <= COPY_LIMIT

    def files(self) -> list[str]:
        """Its regular files and links, relative to the task folder, for the copy."""
        if not self.is_dir:
            return [self.name]
        return [
            f"{self.name}/{relative}"
            for relative, info in _walk(self)
            if stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)
        ]


def host_entries(task_dir: Path) -> list[HostEntry]:
    """The ignored entries of the task folder that its Python files name (by their last
    component: `DATA_DIR / "cities.csv"` names `data/cities.csv`)."""
    ignored = _ignored_top_level(task_dir)
    if not ignored:
        return []
    strings = _strings_by_file(task_dir)
    found = []
    for name in ignored:
        base = name.rsplit("/", 1)[-1]
        named_by = next((f for f, parts in strings.items() if base in parts), None)
        path = task_dir / name
        if named_by is None or not path.exists():
            continue
        resolved = path.resolve()
        entry = HostEntry(name, resolved, named_by, resolved.is_dir(), 0)
        size = sum(info.st_size for _, info in _files(entry))
        found.append(HostEntry(name, resolved, named_by, entry.is_dir, size))
    return found


def fingerprint(entries: list[HostEntry]) -> str:
    """Names, sizes and modification times of every file, so new data means a new setup."""
    digest = hashlib.sha256()
    for entry in entries:
        digest.update(f"{entry.name}\0{entry.path}\0".encode("utf-8", "surrogateescape"))
        for relative, info in _files(entry):
            digest.update(
                f"{relative}\0{info.st_size}\0{info.st_mtime_ns}\0".encode(
                    "utf-8", "surrogateescape"
                )
            )
    return digest.hexdigest()


def unreadable(entry: HostEntry) -> str | None:
    """The first file or folder of an entry that other users cannot read (the containers run as
    another uid), relative to the task folder; None when all can be read."""
    checks = [(entry.name, entry.path.stat())]
    if entry.is_dir:
        checks += [(f"{entry.name}/{relative}", info) for relative, info in _walk(entry)]
    for relative, info in checks:
        needed = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(info.st_mode) else 0)
        if info.st_mode & needed != needed:
            return relative
    return None


def size_text(size: int) -> str:
    total = float(size)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if total < 1000 or unit == "TB":
            return f"{total:.0f} {unit}" if unit == "bytes" else f"{total:.1f} {unit}"
        total /= 1000
    raise AssertionError("unreachable")


def _files(entry: HostEntry) -> Iterator[tuple[str, os.stat_result]]:
    if not entry.is_dir:
        yield "", entry.path.stat()
        return
    for relative, info in _walk(entry):
        if stat.S_ISREG(info.st_mode):
            yield relative, info


def _walk(entry: HostEntry) -> Iterator[tuple[str, os.stat_result]]:
    """(path relative to the entry, lstat) of what is below a folder, links not followed."""
    seen = 0
    for folder, dirs, files in os.walk(entry.path):
        dirs.sort()
        for name in [*dirs, *sorted(files)]:
            full = os.path.join(folder, name)
            try:
                info = os.lstat(full)
            except OSError:
                continue
            seen += 1
            if seen > _WALK_LIMIT:
                return
            yield os.path.relpath(full, entry.path), info


def _ignored_top_level(task_dir: Path) -> list[str]:
    """Entries git ignores as a whole, relative to the task folder: `data/`, `prices.parquet`,
    or `data/cities.csv` in a folder that also has tracked files."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--directory"],
        cwd=task_dir,
        capture_output=True,
    )
    if listed.returncode != 0:
        return []
    names = []
    for item in listed.stdout.decode("utf-8", "surrogateescape").split("\0"):
        name = item.removesuffix("/")
        parts = name.split("/")
        if not name or any(p.startswith(".") or p in _TOOL_FOLDERS for p in parts):
            continue
        names.append(name)
    names = sorted(set(names))
    inside = {n for n in names if any(n.startswith(f"{other}/") for other in names)}
    return [n for n in names if n not in inside]  # `data/` already brings `data/cities.csv`


def _strings_by_file(task_dir: Path) -> dict[str, set[str]]:
    """For each top-level Python file of the task, the path components of its string literals."""
    found: dict[str, set[str]] = {}
    for path in sorted(task_dir.glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
            continue
        parts: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                parts.update(p for p in re.split(r"[/\\]", node.value) if p)
        found[path.name] = parts
    order = ["prepare.py", "train.py"]
    return dict(sorted(found.items(), key=lambda item: (item[0] not in order, item[0])))
