"""One call into train.py, in a process of its own (started by overnight_eval.run_worker).

    python3 -I train_worker.py TRAIN_FILE PREPARE_DIR REPLY_FD     (the request on stdin)

train.py is imported as the module `train` (so its `if __name__ == "__main__":` block does not
run), the requested function is called, and its result, or the error it raised, is written to
REPLY_FD as plain data. Everything here is untrusted: the evaluator decodes the reply without
ever unpickling or importing anything from it.
"""

import contextlib
import importlib.util
import os
import sys
import traceback


def main() -> int:
    train_file, prepare_dir, reply_fd = sys.argv[1], sys.argv[2], int(sys.argv[3])
    # If memory runs out in the evaluator's container, the kernel kills the worker first.
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as handle:
        handle.write("1000")
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
        reply = overnight_eval.encode({"error": f"{type(err).__name__}: {err}"[:2000]})
    os.ftruncate(reply_fd, 0)
    written = 0
    while written < len(reply):
        written += os.pwrite(reply_fd, reply[written:], written)
    return 0


if __name__ == "__main__":
    sys.exit(main())
