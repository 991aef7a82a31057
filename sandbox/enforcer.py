"""PID 1 of every container: runs one command, and ends everything in the container by a deadline.

    python3 -I -S -c "$(cat enforcer.py)" SECONDS [--] [PROGRAM ARGS...]

The harness passes this file's text with `-c`, so no mount is needed and any image with a
python3 (3.6 or later, standard library only) can run it. What code inside cannot undo:
  * As PID 1 of the container's pid namespace it cannot be sent SIGKILL or SIGSTOP from inside,
    and the kernel drops every other signal for which it installed no handler. It installs
    none (Python's own SIGINT handler is put back to the default); SIGCHLD is only blocked and
    collected with sigtimedwait, so a forged SIGCHLD merely wakes it early.
  * It makes itself non-dumpable before it forks, so processes of the same uid can neither
    ptrace it nor open its /proc/1/fd or /proc/1/mem (that needs CAP_SYS_PTRACE, which no
    container of ours holds).
  * Orphans reparent to it and are reaped. When the command exits, or at the deadline, it sends
    SIGKILL to every other process it may signal (kill(-1) from PID 1 spares only itself), and
    its own exit then makes the kernel kill whatever is left in the namespace, whatever its uid.
  * The command's stdout and stderr both go to the container's stdout; the container's stderr
    is kept for this process alone, and its last line is the status the harness reads: why it
    ended, the exit code, the peak memory of the container's cgroup and its OOM kills. Nothing
    the command prints can forge it.
With no PROGRAM it only waits for the deadline (a keeper of the output volume).
Exit code: the command's (128 + N when killed by signal N), or DEADLINE_EXIT at the deadline.
"""

import os
import resource
import signal
import sys
import time

DEADLINE_EXIT = 124
STATUS_PREFIX = "overnight-enforcer: "
_PR_SET_DUMPABLE = 4
_REAP_AFTER_KILL_S = 5.0
_PEAK_FILES = ("/sys/fs/cgroup/memory.peak", "/sys/fs/cgroup/memory/memory.max_usage_in_bytes")
_OOM_FILES = ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control")


def nondumpable() -> bool:
    try:
        import ctypes

        return ctypes.CDLL(None).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    except Exception:  # no ctypes in this image: said in the status line
        return False


def start(command: "list[str]") -> int:
    """Fork and exec the command, its stderr joined to its stdout, with default signals."""
    child = os.fork()
    if child:
        return child
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        for number in (signal.SIGINT, signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(number, signal.SIG_DFL)
        os.dup2(1, 2)
        os.execvp(command[0], command)
    except BaseException as err:
        os.write(2, f"overnight: cannot run {command[0]!r}: {err}\n".encode())
    os._exit(127)


def reap(main: "int | None") -> "int | None":
    """Collect every child that ended; the status of `main` if it was one of them."""
    found = None
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return found
        if pid == 0:
            return found
        if pid == main:
            found = status


def exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def kill_the_rest() -> None:
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:
        return  # no other process is left
    until = time.monotonic() + _REAP_AFTER_KILL_S
    while time.monotonic() < until:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                time.sleep(0.01)
        except ChildProcessError:
            return


def first_number(paths: "tuple[str, ...]", key: "str | None" = None) -> "int | None":
    for path in paths:
        try:
            with open(path) as handle:
                text = handle.read()
        except OSError:
            continue
        if key is None:
            return int(text.split()[0])
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == key:
                return int(parts[1])
    return None


def status_line(reason: str, code: int, dumpable_off: bool) -> str:
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    peak = first_number(_PEAK_FILES)
    oom_kills = first_number(_OOM_FILES, "oom_kill") or 0
    # JSON written by hand: importing json would cost every container's start 20 ms or more.
    return (
        f'{STATUS_PREFIX}{{"exit": {int(code)}, "nondumpable": {str(dumpable_off).lower()}, '
        f'"oom_kills": {int(oom_kills)}, "peak_bytes": {int(peak or children)}, '
        f'"reason": "{reason}"}}\n'
    )


def main(argv: "list[str]") -> int:
    if os.getpid() != 1:
        # kill(-1) is only safe from PID 1 of a container's own pid namespace: anywhere else
        # (a host shell, say) it would kill every process the user may signal.
        os.write(2, b"overnight enforcer: not PID 1 of a container; refusing to run\n")
        return 2
    seconds = float(argv[0])
    command = argv[2:] if argv[1:2] == ["--"] else argv[1:]
    deadline = time.monotonic() + seconds
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGCHLD])
    dumpable_off = nondumpable()
    main_pid = start(command) if command else None
    reason, code = "deadline", DEADLINE_EXIT
    while True:
        status = reap(main_pid)
        if status is not None:
            reason, code = "exit", exit_code(status)
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        signal.sigtimedwait([signal.SIGCHLD], min(remaining, 1.0))
    kill_the_rest()
    if not command:
        reason, code = "deadline", 0  # a keeper that lived its time ended as planned
    os.write(2, status_line(reason, code, dumpable_off).encode())
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
