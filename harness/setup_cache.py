"""The setup's folders, kept for every later run: the task folder as setup left it, and HOME.

Real `prepare.py` files write next to themselves (`data/`) or under `~/.cache/<project>/`, and
`train.py` reads from the same place. So setup runs in a writable copy of the task folder with
a writable HOME, and both are cached (keyed by prepare.py, the image and the task's files).
Later runs see them read-only at the same paths, laid over small writable folders, so `~`,
relative paths and `__file__`-relative paths resolve as they did in setup while the training
can still write its own files (which vanish with its container).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from harness.seams import Mount, Tmpfs
from harness.task import TRAIN
from sandbox.users import own_for_runs

# Folders of HOME that many programs share: training may add its own entries beside setup's.
SHARED_HOME_FOLDERS = (".cache", ".config", ".local", ".local/share")
MAX_ENTRIES = 100  # more top-level entries than this: one read-only mount of the whole folder
_SKIPPED = {".git", ".overnight", ".venv", "venv", "__pycache__", "node_modules", ".mypy_cache"}
_HASHED_BYTES = 4 * 2**20  # files up to this size are hashed; larger ones by size and mtime


def task_files(task_dir: Path) -> list[str]:
    """The task's files as git sees them (tracked, or untracked and not ignored), relative to the
    folder: what the author's checkout has minus what they ignore (a local .venv, downloaded
    data). train.py is left out: each run brings its own."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "."],
        cwd=task_dir,
        capture_output=True,
    )
    if listed.returncode == 0:
        names = [n for n in listed.stdout.decode("utf-8", "surrogateescape").split("\0") if n]
    else:
        names = [
            str(path.relative_to(task_dir))
            for path in task_dir.rglob("*")
            if not _SKIPPED & set(path.relative_to(task_dir).parts)
        ]
    keep = []
    for name in sorted(set(names)):
        path = task_dir / name
        if name == TRAIN or Path(name).parts[0] in _SKIPPED:
            continue
        if path.is_symlink() or path.is_file():
            keep.append(name)
    return keep


def files_fingerprint(task_dir: Path, names: list[str]) -> str:
    digest = hashlib.sha256()
    for name in names:
        path = task_dir / name
        info = path.lstat()
        digest.update(f"{name}\0{info.st_size}\0".encode("utf-8", "surrogateescape"))
        if path.is_symlink():
            digest.update(os.readlink(path).encode("utf-8", "surrogateescape"))
        elif info.st_size <= _HASHED_BYTES:
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        else:
            digest.update(str(info.st_mtime_ns).encode())
    return digest.hexdigest()


def copy_task(task_dir: Path, names: list[str], target: Path) -> None:
    """A writable copy of the task's files, owned by the runs' user, for setup to work in."""
    target.mkdir(parents=True)
    own_for_runs(target, 0o755)
    for name in names:
        source, copy = task_dir / name, target / name
        for parent in reversed(copy.relative_to(target).parents[:-1]):
            if not (target / parent).exists():
                (target / parent).mkdir()
                own_for_runs(target / parent, 0o755)
        if source.is_symlink():
            copy.symlink_to(os.readlink(source))
            continue
        shutil.copyfile(source, copy)
        own_for_runs(copy, 0o755 if os.access(source, os.X_OK) else 0o644)


def snapshot(folder: Path) -> set[tuple[str, int, int]]:
    """(path, size, mtime) of every file below a folder, to tell whether setup wrote anything."""
    found = set()
    for path in folder.rglob("*"):
        try:
            info = path.lstat()
        except OSError:
            continue
        found.add((str(path.relative_to(folder)), info.st_size, info.st_mtime_ns))
    return found


def layered(
    host: Path,
    container: str,
    size_bytes: int,
    exclude: tuple[str, ...] = (),
    shared: tuple[str, ...] = (),
) -> list[Mount | Tmpfs]:
    """`host` shown read-only at `container`, entry by entry, over a writable Tmpfs there.

    Entries named in `shared` become writable folders of their own with their entries read-only
    inside. With more than MAX_ENTRIES entries the whole folder is one read-only mount instead.
    """
    entries = sorted(p.name for p in host.iterdir() if p.name not in exclude)
    if len(entries) > MAX_ENTRIES:
        return [Mount(host, container)]
    mounts: list[Mount | Tmpfs] = [Tmpfs(container, size_bytes)]
    for name in entries:
        if name in shared and (host / name).is_dir() and not (host / name).is_symlink():
            inner = tuple(s.split("/", 1)[1] for s in shared if s.startswith(name + "/"))
            mounts += layered(host / name, f"{container}/{name}", size_bytes, (), inner)
        else:
            mounts.append(Mount(host / name, f"{container}/{name}"))
    return mounts
