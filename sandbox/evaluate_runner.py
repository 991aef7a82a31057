"""Runs `prepare.evaluate(output_dir)` inside the evaluator container and writes its result.

    python3 -I evaluate_runner.py PREPARE_DIR OUTPUT_DIR RESULT_FILE METRIC
        [--output-limit BYTES] [--train-file PATH --users UID:GID,UID:GID]

This file is mounted read-only into a container that never runs agent code in its own process.
`-I` keeps the environment and the working directory from shaping its imports. Before prepare.py
is imported, it refuses an output directory holding links, special files or oversized files,
and switches pickle loading off, so an artifact cannot execute code when it is loaded.

With --train-file, evaluate() may call train.py through `overnight_eval.call_train`. Started as
root (holding only CAP_SETUID and CAP_SETGID), this runner stays as a small supervisor: it drops
the evaluation to the first uid, and starts each call's worker as the second, which can read
neither the private data, nor the result file, nor the evaluator's memory. The result goes to a
file only the evaluator can write; nothing the training run printed counts.
"""

import argparse
import json
import math
import os
import socket
import stat
import struct
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_ENTRIES = 100_000


def parse_args(argv):
    parser = argparse.ArgumentParser()
    for name in ("prepare_dir", "output_dir", "result_file", "metric"):
        parser.add_argument(name)
    parser.add_argument("--output-limit", type=int, default=1 << 40)
    parser.add_argument("--train-file")
    parser.add_argument("--users", help="EVAL_UID:GID,WORKER_UID:GID")
    return parser.parse_args(argv)


# --- before prepare.py is imported ------------------------------------------------------------


def forbid_pickle():
    """Make every way to unpickle raise: pickle, _pickle and numpy's allow_pickle path use them."""
    import _pickle
    import pickle

    def refuse(*args, **kwargs):
        raise pickle.UnpicklingError(
            "overnight: loading pickles is switched off in the evaluator (an artifact could run "
            "code); save arrays with numpy.save and load them with allow_pickle=False"
        )

    class RefusingUnpickler:
        def __init__(self, *args, **kwargs):
            refuse()

    for module in (pickle, _pickle):
        module.load = module.loads = refuse
        module.Unpickler = RefusingUnpickler
    pickle._load = pickle._loads = refuse
    pickle._Unpickler = RefusingUnpickler


def unsafe_output(root, limit):
    """Why the output directory must not be evaluated, or None: links, special files, a file
    or a total over `limit` bytes, unreadable folders, too many entries."""
    total, entries, problems = 0, 0, []

    def unreadable(err):
        problems.append(f"{os.path.relpath(err.filename, root)}: unreadable ({err.strerror})")

    for folder, dirs, files in os.walk(root, onerror=unreadable):
        for name in dirs + files:
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, root)
            info = os.lstat(path)
            entries += 1
            if stat.S_ISLNK(info.st_mode):
                return f"{relative}: a symbolic link (artifacts must be plain files)"
            if stat.S_ISDIR(info.st_mode):
                continue
            if not stat.S_ISREG(info.st_mode):
                return f"{relative}: not a regular file (a device, pipe or socket)"
            if info.st_size > limit:
                return f"{relative}: {info.st_size} bytes, over the {limit}-byte limit"
            total += info.st_size
        if total > limit or entries > MAX_ENTRIES:
            return f"more than {limit} bytes or {MAX_ENTRIES} entries in the output directory"
    return problems[0] if problems else None


def no_memory_reading():
    """Linux: other processes of this uid may not ptrace us or read /proc/<pid>/mem."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 0
    except (OSError, AttributeError, ImportError):
        pass


# --- the evaluation ---------------------------------------------------------------------------


def as_number(value):
    if isinstance(value, bool):
        raise TypeError(f"a bool is not a metric: {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"not a number: {type(value).__name__} {value!r:.80}") from None


def normalise(value, metric):
    """The numbers evaluate() returned, by name. With no metric named yet (one inferred after the
    baseline), every number of a dict is kept and a lone number is called `metric`."""
    if isinstance(value, dict):
        if metric and metric not in value:
            raise KeyError(f"evaluate() returned a dict without the metric {metric!r}")
        metrics = {}
        for key, item in value.items():
            try:
                metrics[str(key)] = as_number(item)
            except TypeError:
                if key == metric:
                    raise
        return metrics
    return {metric or "metric": as_number(value)}


def write(path, payload):
    with open(path, "w") as handle:
        json.dump(payload, handle)


def evaluate(args, channel):
    no_memory_reading()
    problem = unsafe_output(args.output_dir, args.output_limit)
    if problem:
        print(f"overnight: the output directory is refused: {problem}", flush=True)
        write(args.result_file, {"refused": problem})
        return 0
    import overnight_eval

    overnight_eval._channel = channel
    sys.path.insert(0, args.prepare_dir)
    try:
        import prepare

        metrics = normalise(prepare.evaluate(args.output_dir), args.metric)
    except BaseException as err:
        traceback.print_exc()
        write(args.result_file, {"error": f"{type(err).__name__}: {err}"[:2000]})
        return 1
    finite = {k: v for k, v in metrics.items() if math.isfinite(v)}
    write(
        args.result_file,
        {"metrics": {k: (v if k in finite else repr(v)) for k, v in metrics.items()}},
    )
    return 0


# --- call_train's workers ---------------------------------------------------------------------


def worker_env(args):
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


def direct_channel(args):
    """Workers as our own uid: the weaker isolation of --sandbox local without root."""
    import overnight_eval

    told = []

    def call(request, timeout, max_bytes):
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


def send(sock, *frames):
    sock.sendall(b"".join(struct.pack(">Q", len(f)) + f for f in frames))


def receive(sock):
    """One frame, or None at the end of the stream."""
    head = _exactly(sock, 8)
    if head is None:
        return None
    return _exactly(sock, struct.unpack(">Q", head)[0]) or b""


def _exactly(sock, size):
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def socket_channel(sock):
    def call(request, timeout, max_bytes):
        send(sock, json.dumps({"timeout": timeout, "max_bytes": max_bytes}).encode(), request)
        meta = json.loads(receive(sock) or b"{}")
        return meta.get("status", "crash"), meta.get("detail", "failed"), receive(sock) or b""

    return call


def drop_to(uid, gid):
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


def supervise(args):
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


def main(argv):
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
