"""What the evaluator runner checks around prepare.evaluate() (standard library only: it runs in
the task's image, beside prepare.py).

Before prepare.py is imported, `unsafe_output` refuses an output directory holding links, special
files, oversized files, too many entries or folders nested too deep. For the whole evaluation,
`narrowing_is_an_error` turns the warnings numpy gives when a value silently loses part of itself
(a complex value cast to real, a NaN or an overflow cast to an integer or a smaller float) into
exceptions. After it, `metrics_of` accepts only real, finite numbers. `failure_kind` says what
went wrong in words the agent may see: a type or a kind of call_train failure, never a message,
which may quote the private data.
"""

from __future__ import annotations

import contextlib
import math
import os
import reprlib
import stat
import sys
import warnings
from collections.abc import Iterator
from typing import Any

MAX_ENTRIES = 100_000
MAX_DEPTH = 100
NARROWED = "(a value was narrowed; overnight makes that an error)"
# numpy's warnings that a value was narrowed, by message (numpy may not be imported yet)
_NARROWING = (
    (r"Casting complex values to real", RuntimeWarning),  # ComplexWarning
    (r".*encountered in cast", RuntimeWarning),  # NaN, inf or an overflow cast to int or float16
    (r".*out-of-bound Python integers", DeprecationWarning),  # numpy 1.24-1.26
)


class Invalid(Exception):
    """evaluate() gave no valid metric: `kind` in the harness's words, `detail` for the human."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(kind)
        self.kind = kind
        self.detail = detail or kind


# --- before prepare.py is imported ------------------------------------------------------------


def unsafe_output(root: str, limit: int) -> str | None:
    """Why the output directory must not be evaluated, or None: links, special files, a file
    or a total over `limit` bytes, unreadable folders, too many entries, folders nested more than
    MAX_DEPTH deep. Walked with a stack, not recursion, so no depth can make it raise."""
    total, entries, stack = 0, 0, [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        if depth > MAX_DEPTH:
            return (
                f"{_short(os.path.relpath(folder, root))}: folders nested too deep (more than "
                f"{MAX_DEPTH} levels)"
            )
        try:
            found = _listing(folder, MAX_ENTRIES + 1 - entries)
        except OSError as err:
            return f"{_short(os.path.relpath(folder, root))}: unreadable ({err.strerror})"
        for path, info in found:
            relative = _short(os.path.relpath(path, root))
            entries += 1
            if stat.S_ISLNK(info.st_mode):
                return f"{relative}: a symbolic link (artifacts must be plain files)"
            if stat.S_ISDIR(info.st_mode):
                stack.append((path, depth + 1))
            elif not stat.S_ISREG(info.st_mode):
                return f"{relative}: not a regular file (a device, pipe or socket)"
            elif info.st_size > limit:
                return f"{relative}: {info.st_size} bytes, over the {limit}-byte limit"
            else:
                total += info.st_size
        if total > limit or entries > MAX_ENTRIES:
            return f"more than {limit} bytes or {MAX_ENTRIES} entries in the output directory"
    return None


def _listing(folder: str, most: int) -> list[tuple[str, os.stat_result]]:
    """(path, lstat) of at most `most` entries of a folder: a folder of millions of empty files
    costs no more than the limit."""
    found = []
    with os.scandir(folder) as listing:
        for entry in listing:
            found.append((entry.path, entry.stat(follow_symlinks=False)))
            if len(found) >= most:
                break
    return found


def _short(path: str) -> str:
    return path if len(path) <= 60 else path[:60] + "..."


# --- during the evaluation --------------------------------------------------------------------


@contextlib.contextmanager
def narrowing_is_an_error() -> Iterator[None]:
    """Within it, a warning that a value was narrowed raises instead (numpy's ComplexWarning and
    cast warnings), wherever in evaluate() it happens. Call `numpy_too()` once prepare.py is
    imported, to catch numpy's ComplexWarning by its class as well."""
    with warnings.catch_warnings():
        for message, category in _NARROWING:
            warnings.filterwarnings("error", message=message, category=category)
        yield


def numpy_too() -> None:
    numpy = sys.modules.get("numpy")
    if numpy is None:
        return
    exceptions = getattr(numpy, "exceptions", None)
    complex_warning = getattr(exceptions, "ComplexWarning", None) or getattr(
        numpy, "ComplexWarning", None
    )
    if complex_warning is not None:
        warnings.filterwarnings("error", category=complex_warning)


# --- after it ---------------------------------------------------------------------------------


def metrics_of(value: object, metric: str | None) -> dict[str, float]:
    """{name: float} from what evaluate() returned (a number, or a dict holding the metric), or
    Invalid: the metric and every other value must be a real, finite number (an int, a float or
    a real numpy scalar; not a bool, a complex, a string, an array or anything else). With no
    metric named yet (one inferred after the baseline), a lone number is called `metric`."""
    name = metric or "metric"
    if isinstance(value, dict):
        if metric and metric not in value:
            keys = sorted(str(key) for key in value)[:20]
            raise Invalid(f"evaluate() returned no {metric}", f"a dict with the keys {keys}")
        items = list(value.items())
    else:
        items = [(name, value)]
    metrics = {}
    for key, item in items:
        where = name if key == name else "another value"
        metrics[str(key)[:200]] = _real_number(item, where, key)
    return metrics


def _real_number(value: Any, where: str, key: object) -> float:
    numpy = sys.modules.get("numpy")
    real = type(value) in (int, float) or (
        numpy is not None
        and isinstance(value, numpy.integer | numpy.floating)
        and not isinstance(value, numpy.timedelta64)
    )
    if not real:
        raise Invalid(
            f"evaluate() returned {_name(value, 'an object')} for {where}, not a real number",
            f"evaluate() returned {type(value).__name__} {reprlib.repr(value)} for {key!r}",
        )
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise Invalid(f"evaluate() gave {where}: not a finite number", f"{key!r} = {number!r}")
    return number


def failure_kind(err: BaseException, call_error: type[BaseException] | None = None) -> str:
    """What went wrong, for the agent: the kind of a call_train failure anywhere in the
    exception's chain, else the exception's type. Never its message."""
    seen: set[int] = set()
    link: BaseException | None = err
    while link is not None and id(link) not in seen and len(seen) < 100:
        seen.add(id(link))
        if call_error is not None and isinstance(link, call_error):
            kind = getattr(link, "kind", None)
            return kind if isinstance(kind, str) and kind else "call_train failed"
        link = link.__cause__ or link.__context__
    name = _name(err, "an exception")
    if isinstance(err, Warning):
        return f"evaluate() raised {name} {NARROWED}"
    return f"evaluate() raised {name}"


def describe(err: BaseException) -> str:
    """The exception with its message, for the human."""
    try:
        return f"{type(err).__name__}: {err}"[:2000]
    except Exception:  # a message that cannot be shown
        return type(err).__name__


def _name(value: object, fallback: str) -> str:
    name = type(value).__name__
    return name if name.isidentifier() and len(name) <= 60 else fallback
