"""call_train: how an evaluator calls code from train.py without ever running it itself.

    from overnight_eval import call_train

    def evaluate(output_dir):
        predictions = call_train("predict", test_inputs, timeout=60)
        ...

`call_train(function, *args, timeout=60.0, **kwargs)` imports train.py in a separate process, as
another user that cannot read the private data, the result file or the evaluator's memory, calls
`train.function(*args, **kwargs)` there and returns what it returned. Arguments and results are
plain data only: None, bools, numbers, strings, lists, tuples (returned as lists), dicts with
string keys, and numpy arrays of non-object dtypes (sent with np.save, read with
allow_pickle=False). Anything else is refused. Each call gets a fresh process; it is killed,
with everything it started, when it returns or when `timeout` seconds have passed.

Failures raise TrainCallError: let it propagate (the experiment is then invalid) or catch it and
score the answer as wrong. train.py is imported as the module `train`, so code under
`if __name__ == "__main__":` (the training itself) does not run in the worker.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import struct
import subprocess
import sys
from typing import Any

MAGIC = b"OVNCALL1"
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
_HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(_HERE, "train_worker.py")
_NO_DATA = "call_train worker answered with no plain data"


class TrainCallError(Exception):
    """A call into train.py failed: it raised, timed out, crashed or answered with something
    that is not plain data.

    The message is for the human: it may quote what train.py printed or raised, and so the
    held-out data it was given. `kind` is what the agent may learn when the failure makes the
    experiment invalid: which function, and how it failed (a timeout, an exit code, the name of
    a built-in exception), never a message.
    """

    def __init__(self, message: str, kind: str = "call_train failed") -> None:
        super().__init__(message)
        self.kind = kind


# --- plain data, both ways -------------------------------------------------------------------


def encode(value: Any) -> bytes:
    """JSON with numpy arrays carried alongside as .npy bytes; never a pickle."""
    arrays: list[bytes] = []
    tree = _to_tree(value, arrays, depth=0)
    frames = [json.dumps(tree).encode(), *arrays]
    out = [MAGIC, struct.pack(">I", len(frames))]
    for frame in frames:
        out += [struct.pack(">Q", len(frame)), frame]
    return b"".join(out)


def decode(data: bytes) -> Any:
    """The inverse of encode(); refuses anything else (a pickle included) with ValueError."""
    if not data.startswith(MAGIC):
        raise ValueError("not a call_train message")
    (count,) = struct.unpack_from(">I", data, len(MAGIC))
    offset, frames = len(MAGIC) + 4, []
    for _ in range(count):
        (size,) = struct.unpack_from(">Q", data, offset)
        offset += 8
        if offset + size > len(data):
            raise ValueError("a truncated call_train message")
        frames.append(data[offset : offset + size])
        offset += size
    if not frames:
        raise ValueError("an empty call_train message")
    return _from_tree(json.loads(frames[0]), frames[1:])


def _to_tree(value: Any, arrays: list[bytes], depth: int) -> Any:
    if depth > 100:
        raise TypeError("call_train: data nested more than 100 levels deep")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_to_tree(item, arrays, depth + 1) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise TypeError("call_train: dict keys must be strings")
        if "__ndarray__" in value:
            raise TypeError("call_train: '__ndarray__' is a reserved key")
        return {key: _to_tree(item, arrays, depth + 1) for key, item in value.items()}
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.generic):
        return value.item()
    if numpy is not None and isinstance(value, numpy.ndarray):
        if value.dtype.hasobject:
            raise TypeError("call_train: arrays of Python objects are not plain data")
        buffer = io.BytesIO()
        numpy.save(buffer, value, allow_pickle=False)
        arrays.append(buffer.getvalue())
        return {"__ndarray__": len(arrays) - 1}
    raise TypeError(
        f"call_train exchanges plain data only (JSON types and numpy arrays), not "
        f"{type(value).__name__}"
    )


def _from_tree(tree: Any, arrays: list[bytes]) -> Any:
    if isinstance(tree, list):
        return [_from_tree(item, arrays) for item in tree]
    if isinstance(tree, dict):
        if set(tree) == {"__ndarray__"}:
            import numpy

            return numpy.load(io.BytesIO(arrays[int(tree["__ndarray__"])]), allow_pickle=False)
        return {key: _from_tree(item, arrays) for key, item in tree.items()}
    return tree


# --- the evaluator's side ---------------------------------------------------------------------

# Set by the evaluator runner before prepare.py is imported: a function that runs one call.
_channel: Any = None


def call_train(function: str, *args: Any, timeout: float = 60.0, **kwargs: Any) -> Any:
    """Call `train.<function>(*args, **kwargs)` in an isolated worker and return its result."""
    if _channel is None:
        raise TrainCallError(
            "call_train works only inside evaluate(), and only when prepare.py imports "
            "overnight_eval at its top level (that is how overnight knows to set up workers)"
        )
    if not isinstance(function, str) or not function.isidentifier():
        raise TrainCallError(f"call_train: {function!r} is not a function name")
    request = encode({"function": function, "args": list(args), "kwargs": kwargs})
    status, detail, data = _channel(request, float(timeout), DEFAULT_MAX_BYTES)
    if status != "ok":
        how = {"timeout": "timed out", "too_big": "answered with too much data"}.get(status, detail)
        raise TrainCallError(f"train.py's {function}() {detail}", f"call_train worker {how}")
    no_data = f"train.py's {function}() answered with no plain data"
    try:
        reply = decode(data)
    except (ValueError, KeyError, IndexError, struct.error) as err:
        raise TrainCallError(f"{no_data}: {err}", _NO_DATA) from None
    if not isinstance(reply, dict) or not ({"result"} == set(reply) or "error" in reply):
        raise TrainCallError(no_data, _NO_DATA)
    if "error" in reply:
        raise TrainCallError(
            f"train.py's {function}() raised {str(reply['error'])[:2000]}",
            f"call_train: train.py's {function}() raised {_builtin_name(reply.get('type'))}",
        )
    return reply["result"]


def _builtin_name(name: Any) -> str:
    """The exception's type if it is a built-in one; the worker chose the name, so anything
    else (a class it named after the data it was given, say) is just `an exception`."""
    import builtins

    kind = getattr(builtins, name, None) if isinstance(name, str) else None
    if isinstance(kind, type) and issubclass(kind, BaseException):
        return str(name)
    return "an exception"


# --- running one worker -----------------------------------------------------------------------


def run_worker(
    request: bytes,
    timeout: float,
    max_bytes: int,
    paths: tuple[str, str],
    env: dict[str, str],
    user: tuple[int, int] | None,
) -> tuple[str, str, bytes]:
    """Run one call in a fresh worker; returns (status, detail, reply bytes).

    `paths` is (train.py, the folder of prepare.py). With `user`, the worker runs as that uid
    (the caller must be root) and afterwards every process of that uid is killed; without, it
    runs as the caller in a session of its own, which is killed.
    """
    train_file, prepare_dir = paths
    if user is not None and _host_pids():
        _become_subreaper()
    request_fd, reply_fd = _anonymous_file(), _anonymous_file()
    try:
        os.write(request_fd, request)
        os.lseek(request_fd, 0, os.SEEK_SET)
        worker = subprocess.Popen(
            [sys.executable, "-I", WORKER, train_file, prepare_dir, str(reply_fd)],
            stdin=request_fd,
            pass_fds=(reply_fd,),
            env=env,
            cwd="/tmp" if os.path.isdir("/tmp") else None,
            start_new_session=True,
            user=user[0] if user else None,
            group=user[1] if user else None,
            extra_groups=[] if user else None,
        )
        try:
            code = worker.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        _kill_worker(worker, user)
        if code is None:
            return "timeout", f"ran past its time limit of {timeout:g}s and was killed", b""
        if code < 0:
            return "crash", f"was killed by signal {-code}", b""
        if code != 0:
            return "crash", f"exited with code {code}", b""
        size = os.fstat(reply_fd).st_size
        if size > max_bytes:
            return "too_big", f"answered with {size} bytes, over the {max_bytes}-byte limit", b""
        return "ok", "", os.pread(reply_fd, size, 0)
    finally:
        os.close(request_fd)
        os.close(reply_fd)


def _host_pids() -> bool:
    """Whether this runs in the host's pid space (--sandbox local says so in the environment)."""
    return os.environ.get("OVERNIGHT_HOST_PIDS") == "1"


def _become_subreaper() -> None:
    """Orphans of our children come to us rather than to init (Linux), so a worker's processes
    that left its session are still found."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def _kill_orphans_of(uid: int) -> None:
    """Kill and reap our children of `uid` (the worker's orphans), round after round, until
    none is left: each round's victims hand their own children to us."""
    for _ in range(200):
        strays = [pid for pid, owner in _our_children() if owner == uid]
        if not strays:
            return
        for pid in strays:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def _our_children() -> list[tuple[int, int]]:
    """(pid, uid) of every live child of this process, from /proc."""
    me, found = os.getpid(), []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status") as handle:
                fields = dict(line.split(":", 1) for line in handle if ":" in line)
        except OSError:
            continue
        if int(fields.get("PPid", "0")) == me:
            found.append((int(entry.name), int(fields["Uid"].split()[0])))
    return found


def _anonymous_file() -> int:
    """A file with no name (memfd on Linux), so no other process can open it."""
    if hasattr(os, "memfd_create"):
        return os.memfd_create("overnight-call", 0)
    import tempfile

    with tempfile.TemporaryFile() as handle:
        return os.dup(handle.fileno())


def _kill_worker(worker: subprocess.Popen, user: tuple[int, int] | None) -> None:
    """Kill the worker and everything it started: in a container, every process of its uid
    (the container's pid namespace holds nothing else of that uid); in the host's pid space
    (--sandbox local), only the worker's own processes, found as our orphans."""
    if user is not None and _host_pids():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        _kill_orphans_of(user[0])
        return
    if user is not None:
        killer = os.fork()
        if killer == 0:  # pragma: no cover - the child only kills and exits
            try:
                os.setgroups([])
                os.setresgid(user[1], user[1], user[1])
                os.setresuid(user[0], user[0], user[0])
                os.kill(-1, signal.SIGKILL)  # every process this uid may signal: the worker's own
            finally:
                os._exit(0)
        os.waitpid(killer, 0)
    else:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
