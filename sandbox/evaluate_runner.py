"""Runs `prepare.evaluate(output_dir)` inside the evaluator container and writes its result.

    python3 -I evaluate_runner.py PREPARE_DIR OUTPUT_DIR RESULT_FILE METRIC
        [--output-limit BYTES] [--train-file PATH --users UID:GID,UID:GID]

This file is mounted read-only into a container that never runs agent code in its own process.
`-I` keeps the environment and the working directory from shaping its imports. Before prepare.py
is imported, it refuses an output directory holding links, special files, oversized files or
folders nested too deep, and switches pickle loading off, so an artifact cannot execute code when
it is loaded. A value narrowed with a warning during evaluate() (a complex cast to real) raises,
and only real, finite numbers count (evaluator_checks.py). What went wrong is written in two
parts: the kind of failure, which the agent may see, and the message, for the human only.

With --train-file, evaluate() may call train.py through `overnight_eval.call_train`. Started as
root (holding only CAP_SETUID and CAP_SETGID), this runner stays as a small supervisor: it drops
the evaluation to the first uid, and starts each call's worker as the second, which can read
neither the private data, nor the result file, nor the evaluator's memory. The result goes to a
file only the evaluator can write; nothing the training run printed counts.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import sys
import traceback
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
# how evaluate() reaches call_train's workers: (request, timeout, max_bytes) -> (status, detail, reply)
Channel = Callable[[bytes, float, int], tuple[str, str, bytes]]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    for name in ("prepare_dir", "output_dir", "result_file", "metric"):
        parser.add_argument(name)
    parser.add_argument("--output-limit", type=int, default=1 << 40)
    parser.add_argument("--train-file")
    parser.add_argument("--users", help="EVAL_UID:GID,WORKER_UID:GID")
    return parser.parse_args(argv)


# --- before prepare.py is imported ------------------------------------------------------------


def forbid_pickle() -> None:
    """Make every way to unpickle raise: pickle, _pickle and numpy's allow_pickle path use them."""
    import _pickle
    import pickle

    def refuse(*args: object, **kwargs: object) -> Any:
        raise pickle.UnpicklingError(
            "overnight: loading pickles is switched off in the evaluator (an artifact could run "
            "code); save arrays with numpy.save and load them with allow_pickle=False"
        )

    class RefusingUnpickler:
        def __init__(self, *args: object, **kwargs: object) -> None:
            refuse()

    for module in (pickle, _pickle):
        module.load = module.loads = refuse  # type: ignore[attr-defined]
        module.Unpickler = RefusingUnpickler  # type: ignore[attr-defined]
    pickle._load = pickle._loads = refuse  # type: ignore[attr-defined]
    pickle._Unpickler = RefusingUnpickler  # type: ignore[misc,assignment]


def no_memory_reading() -> None:
    """Linux: other processes of this uid may not ptrace us or read /proc/<pid>/mem."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 0
    except (OSError, AttributeError, ImportError):
        pass


# --- the evaluation ---------------------------------------------------------------------------


def write(path: str, payload: dict[str, Any]) -> None:
    with open(path, "w") as handle:
        json.dump(payload, handle)


def evaluate(args: argparse.Namespace, channel: Channel | None) -> int:
    """Score the output; result.json gets the metrics, or why there are none: `refused` or
    `invalid` in the harness's words (the agent may see them) and a `detail` for the human."""
    import evaluator_checks as checks

    no_memory_reading()
    problem = checks.unsafe_output(args.output_dir, args.output_limit)
    if problem:
        print(f"overnight: the output directory is refused: {problem}", flush=True)
        write(args.result_file, {"refused": problem})
        return 0
    import overnight_eval

    overnight_eval._channel = channel
    sys.path.insert(0, args.prepare_dir)
    try:
        with checks.narrowing_is_an_error():
            import prepare

            checks.numpy_too()
            metrics = checks.metrics_of(prepare.evaluate(args.output_dir), args.metric)
    except checks.Invalid as err:
        print(f"overnight: {err.detail}", flush=True)
        write(args.result_file, {"invalid": err.kind, "detail": err.detail[:2000]})
        return 0
    except BaseException as err:
        traceback.print_exc()
        kind = checks.failure_kind(err, overnight_eval.TrainCallError)
        write(args.result_file, {"invalid": kind, "detail": checks.describe(err)})
        return 0
    write(args.result_file, {"metrics": metrics})
    return 0


# --- call_train's workers ---------------------------------------------------------------------


def worker_env(args: argparse.Namespace) -> dict[str, str]:
    env = {
        "HOME": os.environ.get("HOME", "/tmp"),
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OVERNIGHT_OUTPUT_DIR": args.output_dir,
    }
    for name in ("OVERNIGHT_DATA_DIR", "OVERNIGHT_TIME_BUDGET", "TMPDIR"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def direct_channel(args: argparse.Namespace) -> Channel:
    """Workers as our own uid: the weaker isolation of --sandbox local without root."""
    import overnight_eval

    told: list[bool] = []

    def call(request: bytes, timeout: float, max_bytes: int) -> tuple[str, str, bytes]:
        if not told:
            told.append(True)
            print(
                "overnight: call_train workers run as the evaluator's own user (no root to switch "
                "users): weaker isolation, they could read the private data",
                flush=True,
            )
        paths = (args.train_file, args.prepare_dir)
        return overnight_eval.run_worker(request, timeout, max_bytes, paths, worker_env(args), None)

    return call


def send(sock: socket.socket, *frames: bytes) -> None:
    sock.sendall(b"".join(struct.pack(">Q", len(f)) + f for f in frames))


def receive(sock: socket.socket) -> bytes | None:
    """One frame, or None at the end of the stream."""
    head = _exactly(sock, 8)
    if head is None:
        return None
    return _exactly(sock, struct.unpack(">Q", head)[0]) or b""


def _exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def socket_channel(sock: socket.socket) -> Channel:
    def call(request: bytes, timeout: float, max_bytes: int) -> tuple[str, str, bytes]:
        send(sock, json.dumps({"timeout": timeout, "max_bytes": max_bytes}).encode(), request)
        meta = json.loads(receive(sock) or b"{}")
        return meta.get("status", "crash"), meta.get("detail", "failed"), receive(sock) or b""

    return call


def drop_to(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


def supervise(args: argparse.Namespace) -> int:
    """Root with CAP_SETUID/CAP_SETGID only: evaluate as one uid, run workers as the other."""
    (eval_uid, eval_gid), worker = [tuple(map(int, p.split(":"))) for p in args.users.split(",")]
    ours, theirs = socket.socketpair()
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child == 0:
        ours.close()
        drop_to(eval_uid, eval_gid)
        code = evaluate(args, socket_channel(theirs) if args.train_file else None)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    theirs.close()
    import overnight_eval

    while True:
        meta = receive(ours)
        request = receive(ours) if meta is not None else None
        if meta is None or request is None:
            break
        limits = json.loads(meta)
        timeout, max_bytes = float(limits["timeout"]), int(limits["max_bytes"])
        paths = (args.train_file, args.prepare_dir)
        status, detail, reply = overnight_eval.run_worker(
            request, timeout, max_bytes, paths, worker_env(args), worker
        )
        send(ours, json.dumps({"status": status, "detail": detail}).encode(), reply)
    _, status = os.waitpid(child, 0)
    return os.waitstatus_to_exitcode(status)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    sys.path.insert(0, HERE)  # overnight_eval; -I keeps the script's own folder off sys.path
    os.umask(0o077)  # nothing the evaluator writes to /tmp is readable by a worker
    forbid_pickle()
    if os.geteuid() == 0:
        if not args.users:
            print("overnight: the evaluator refuses to run as root without --users", flush=True)
            return 2
        return supervise(args)
    return evaluate(args, direct_channel(args) if args.train_file else None)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
