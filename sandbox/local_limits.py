"""Sets resource limits, then becomes the command (--sandbox local's stand-in for cgroups).

    python3 -I local_limits.py NAME=VALUE ... -- PROGRAM ARGS...

Each NAME is an RLIMIT_ name (DATA, CPU, FSIZE, NPROC, NOFILE, CORE); a limit the OS does not
offer, or one above the current hard limit, is skipped. On Linux the command is also killed when
the harness dies, and no setuid program can raise its privileges (no-new-privileges).
"""

from __future__ import annotations

import os
import resource
import signal
import sys


def main(argv: list[str]) -> None:
    split = argv.index("--")
    for pair in argv[:split]:
        name, value = pair.split("=", 1)
        limit = getattr(resource, f"RLIMIT_{name}", None)
        if limit is None:
            continue
        wanted = int(value)
        try:
            _, hard = resource.getrlimit(limit)
            if hard != resource.RLIM_INFINITY:
                wanted = min(wanted, hard)
            resource.setrlimit(limit, (wanted, wanted))
        except (ValueError, OSError):
            pass
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
            libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS: no setuid binary raises us
        except (OSError, AttributeError, ImportError):
            pass
    program, *args = argv[split + 1 :]
    os.execvp(program, [program, *args])


if __name__ == "__main__":
    main(sys.argv[1:])
