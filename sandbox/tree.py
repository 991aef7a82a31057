"""Walking and removing folder trees a run made, at any depth, without recursion.

A run can nest folders thousands deep: Python's `os.walk` and `shutil.rmtree` recurse once per
level (RecursionError near 1,000) and absolute paths pass PATH_MAX near 2,000. So walks here use
an explicit stack and stop at `MAX_DEPTH` (deeper is never what a run meant to hand over), and
removal goes to coreutils' `chmod -R` and `rm -rf`, which work relative to descriptors.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

MAX_DEPTH = 100


def walk(top: Path, max_depth: int = MAX_DEPTH) -> Iterator[tuple[str, list[str], list[str]]]:
    """(folder, sub-folders, other entries) top-down, as `os.walk`, symlinks not followed,
    at most `max_depth` levels below `top`; unreadable folders are skipped."""
    stack = [(str(top), 0)]
    while stack:
        folder, depth = stack.pop()
        dirs: list[str] = []
        others: list[str] = []
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    with contextlib.suppress(OSError):
                        is_dir = entry.is_dir(follow_symlinks=False)
                        (dirs if is_dir else others).append(entry.name)
        except OSError:
            continue
        yield folder, dirs, others
        if depth < max_depth:
            stack.extend((os.path.join(folder, name), depth + 1) for name in reversed(dirs))


def remove(path: Path) -> None:
    """Remove a tree that runs may have made read-only, however deep; quietly if it is gone."""
    if not os.path.lexists(path):
        return
    if path.is_dir() and not path.is_symlink():
        subprocess.run(["chmod", "-R", "u+rwx", "--", str(path)], capture_output=True, check=False)
    subprocess.run(
        ["rm", "-rf", "--one-file-system", "--", str(path)], capture_output=True, check=False
    )
