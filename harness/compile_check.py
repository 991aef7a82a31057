"""Whether a train.py compiles, asked of a child Python with a deadline and a memory cap.

Compiling is not running, but crafted source can make the compiler recurse past its limit,
exhaust memory or take long (a million-term expression, say); in a child process each of those
is one answer for the model, never a fault of the night. The child only compiles: nothing in
the source runs.
"""

from __future__ import annotations

import json
import subprocess
import sys

COMPILE_TIMEOUT_S = 20.0
COMPILE_MEMORY = 2 * 1024**3

_CHILD = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({memory}, {memory}))
source = sys.stdin.buffer.read().decode("utf-8")
try:
    compile(source, "train.py", "exec", dont_inherit=True)
    answer = {{}}
except SyntaxError as err:
    answer = {{"msg": str(err.msg), "lineno": err.lineno}}
except (ValueError, MemoryError, RecursionError) as err:
    answer = {{"msg": type(err).__name__ + (": " + str(err) if str(err) else "")}}
sys.stdout.write(json.dumps(answer))
"""


class CompileProblem(Exception):
    """Why the source does not compile; `lineno` where the compiler says so."""

    def __init__(self, message: str, lineno: int | None = None) -> None:
        super().__init__(message)
        self.msg = message
        self.lineno = lineno


def check_compiles(source: str, timeout_s: float = COMPILE_TIMEOUT_S) -> None:
    """Returns when `source` compiles; raises CompileProblem saying why it does not."""
    code = _CHILD.format(memory=COMPILE_MEMORY)
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", code],
            input=source.encode("utf-8"),
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise CompileProblem(f"compiling it took longer than {timeout_s:g}s") from None
    try:
        answer = json.loads(done.stdout or b"null")
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise CompileProblem(f"the compiler stopped without an answer (exit {done.returncode})")
    if "msg" in answer:
        message = str(answer["msg"])
        if message.startswith(("MemoryError", "RecursionError")):
            message += " (it is nested too deeply for Python's compiler)"
        lineno = answer.get("lineno")
        raise CompileProblem(message, lineno if isinstance(lineno, int) else None)
