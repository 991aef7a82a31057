"""One call into train.py, in a process of its own (started by overnight_eval.run_worker).

    python3 -I train_worker.py TRAIN_FILE PREPARE_DIR REPLY_FD     (the request on stdin)

Before train.py is imported, the worker makes itself the first process the kernel kills when
memory runs out in the evaluator's container (oom_score_adj 1000), in a way train.py cannot undo:
a Landlock domain, which no process can leave and every child inherits, lets it write files only
under its home and TMPDIR (/tmp in a container) and /dev, so /proc/self/oom_score_adj can no
longer be opened for writing.
(Without CAP_SYS_RESOURCE, which no container of ours holds, the kernel would let it lower the
value back to 0.) Where the kernel lacks Landlock, this is said on the evaluator's output.

train.py is imported as the module `train` (so its `if __name__ == "__main__":` block does not
run), the requested function is called, and its result, or the error it raised, is written to
REPLY_FD as plain data. Everything here is untrusted: the evaluator decodes the reply without
ever unpickling or importing anything from it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import struct
import sys
import traceback

_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446  # the same on every architecture
_WRITE_FILE = 1 << 1  # LANDLOCK_ACCESS_FS_WRITE_FILE
_PATH_BENEATH = 1
_NO_NEW_PRIVS = 38


def confine() -> bool:
    """oom_score_adj 1000 that sticks; False when Landlock is not there to make it stick."""
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as handle:
        handle.write("1000")
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
    except (OSError, ImportError, AttributeError):
        return False

    def call(*args: object) -> int:
        result = libc.syscall(*args)
        if result < 0:
            raise OSError(ctypes.get_errno(), "landlock")
        return result

    allowed = {"/dev", os.environ.get("HOME", "/tmp"), os.environ.get("TMPDIR", "/tmp")}
    try:
        attr = ctypes.create_string_buffer(struct.pack("=Q", _WRITE_FILE), 8)
        ruleset = call(_CREATE_RULESET, attr, ctypes.c_size_t(8), 0)
        for path in sorted(p for p in allowed if os.path.isdir(p)):
            folder = os.open(path, os.O_PATH | os.O_CLOEXEC)
            rule = struct.pack("=Qi", _WRITE_FILE, folder)
            call(_ADD_RULE, ruleset, _PATH_BENEATH, ctypes.create_string_buffer(rule, len(rule)), 0)
            os.close(folder)
        if libc.prctl(_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return False
        call(_RESTRICT_SELF, ruleset, 0)
        os.close(ruleset)
    except OSError:
        return False
    return True


def main() -> int:
    train_file, prepare_dir, reply_fd = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if not confine():
        print(
            "overnight: the kernel has no Landlock here, so a call_train worker could lower its "
            "oom_score_adj (the evaluator might then be the one killed when memory runs out)",
            file=sys.stderr,
            flush=True,
        )
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:0] = [prepare_dir, here, os.path.dirname(train_file)]
    import overnight_eval

    try:
        request = overnight_eval.decode(sys.stdin.buffer.read())
        spec = importlib.util.spec_from_file_location("train", train_file)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["train"] = module
        spec.loader.exec_module(module)
        function = getattr(module, request["function"])
        reply = overnight_eval.encode({"result": function(*request["args"], **request["kwargs"])})
    except BaseException as err:
        traceback.print_exc()
        error = {"error": f"{type(err).__name__}: {err}"[:2000], "type": type(err).__name__}
        reply = overnight_eval.encode(error)
    os.ftruncate(reply_fd, 0)
    written = 0
    while written < len(reply):
        written += os.pwrite(reply_fd, reply[written:], written)
    return 0


if __name__ == "__main__":
    sys.exit(main())
