"""--sandbox local: the sandbox contract with the host's own means, for machines without Docker.

Each run gets a temporary root: read-only mounts are copied into it (files and folders made
read-only), writable ones and scratch areas are linked, and every container path in the spec's
command, environment and working directory is mapped below it (`/overnight/...`, `/tmp`). The
command runs as the harness's uid (nobody when that is root), in a new session, with only the
spec's environment, under resource limits where the OS offers them, and is killed with all its
descendants at the deadline. Much weaker isolation than Docker: no network or filesystem
isolation (code can read what its uid can read, the private data included, and reach the
network), which `validate`, `status` and the start of a run say.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from harness.errors import OvernightError
from harness.seams import Mount, RunResult, RunSpec, RunStatus, Scratch, ScratchMount, Tmpfs
from sandbox import tree
from sandbox.hardening import Limits
from sandbox.process_tree import OrphansComeToUs, kill_group, processes_of
from sandbox.users import NOBODY, run_ids

WARNING = (
    "--sandbox local: WEAKER ISOLATION. train.py runs as a plain process on this machine: it can "
    "reach the network and read what this user can read, the held-out data included. Use Docker "
    "for a metric you must trust."
)
_LIMITS_SHIM = Path(__file__).resolve().parent / "local_limits.py"
_MAPPED = ("/overnight", "/tmp")
_LINUX = sys.platform.startswith("linux")


class LocalSandboxError(OvernightError):
    """The local sandbox cannot run here as it should; the message says what to do."""


def python_for(uid: int) -> str:
    """The Python that runs `python3` in the spec: overnight's own, unless the code must run as
    another uid (nobody, when overnight runs as root) that cannot execute it."""
    candidates = [sys.executable, "/usr/local/bin/python3", "/usr/bin/python3"]
    if uid == os.getuid():
        return sys.executable
    for candidate in candidates:
        if os.path.exists(candidate) and _everyone_can_run(candidate):
            return candidate
    raise LocalSandboxError(
        f"--sandbox local runs train.py as nobody because overnight runs as root, and nobody "
        f"cannot run {sys.executable}; run overnight as a normal user, or install python3 where "
        "every user can run it"
    )


def _everyone_can_run(path: str) -> bool:
    real = Path(os.path.realpath(path))
    folders_ok = all(os.stat(folder).st_mode & 0o001 for folder in real.parents)
    return folders_ok and bool(os.stat(real).st_mode & 0o001)


class LocalSandbox:
    """Runs each step as a local process group; the evaluator is a process of its own too."""

    def __init__(
        self, limits: Limits, run_id: str, say: Callable[[str], None] = lambda _: None
    ) -> None:
        self.limits = limits
        self.run_id = run_id
        self.say = say

    def open(self) -> None:
        """Nothing to reach: the host is always there."""

    def prepare(self, image: str) -> None:
        """Nothing is left by a dead harness but temporary folders; say what isolation this is."""
        self.say(WARNING)

    def remove_leftovers(self) -> int:
        return 0  # every run removes its own folder, and its processes die with their session

    def close(self) -> None:
        """Nothing is held between runs."""

    @contextlib.contextmanager
    def scratch(self, size_bytes: int, lifetime_s: float = 3600.0) -> Iterator[Scratch]:
        """A temporary folder; no file in it may outgrow `size_bytes` (RLIMIT_FSIZE). Nothing
        keeps it alive, so `lifetime_s` needs no enforcing here."""
        folder = tempfile.mkdtemp(prefix=f"overnight-scratch-{self.run_id}-")
        try:
            _give_to_runs(Path(folder))
            yield Scratch(name=folder, size_bytes=size_bytes)
        finally:
            _remove_tree(Path(folder))

    def run(self, spec: RunSpec) -> RunResult:
        root = Path(tempfile.mkdtemp(prefix=f"overnight-local-{self.run_id}-"))
        try:
            self._lay_out(root, spec)
            result = _Process(self.limits, spec, root).run()
            for mount in spec.mounts:  # what the run wrote goes back to the host folder
                if isinstance(mount, Mount) and not mount.read_only:
                    _copy_back(root / mount.container.lstrip("/"), mount.host)
            return result
        finally:
            _remove_tree(root)

    def _lay_out(self, root: Path, spec: RunSpec) -> None:
        os.chmod(root, 0o755)
        (root / "tmp").mkdir()
        _give_to_runs(root / "tmp", mode=0o1777)
        # Outer folders first, so a mount below a Tmpfs lands inside it.
        for mount in sorted(spec.mounts, key=lambda m: m.container.count("/")):
            target = root / mount.container.lstrip("/")
            for parent in reversed(target.relative_to(root).parents[:-1]):
                if not (root / parent).exists():
                    (root / parent).mkdir()
                    os.chmod(root / parent, 0o755)
            if isinstance(mount, Tmpfs):
                target.mkdir(exist_ok=True)
                _give_to_runs(target)
            elif isinstance(mount, ScratchMount):  # a folder of ours that the run's uid owns
                if mount.read_only:
                    _make_read_only(Path(mount.scratch.name))
                target.symlink_to(mount.scratch.name, target_is_directory=True)
            elif mount.read_only:
                _copy_read_only(mount.host, target)
            else:  # copied in, and back after the run: the host folder may be out of its reach
                shutil.copytree(mount.host, target, symlinks=True)
                for folder, dirs, files in tree.walk(target):
                    for name in [".", *dirs, *files]:
                        _give_to_runs(Path(folder, name), mode=None)


class _Process:
    """One command under limits, with a deadline, the tail of its output and its peak memory."""

    def __init__(self, limits: Limits, spec: RunSpec, root: Path) -> None:
        self.limits = limits
        self.spec = spec
        self.root = root
        self.tail = bytearray()
        self.started = 0.0

    def map(self, value: str) -> str:
        """A container path (or a colon-separated list of them) as a path under the root."""
        parts = []
        for part in value.split(":"):
            mapped = any(part == p or part.startswith(p + "/") for p in _MAPPED)
            parts.append(str(self.root) + part if mapped else part)
        return ":".join(parts)

    def command(self) -> list[str]:
        first, *rest = self.spec.command
        python = python_for(run_ids()[0])
        program = python if first in ("python3", "python") else first
        shim = self.root / "limits.py"  # a copy, so the run's uid can read it wherever we live
        shutil.copy(_LIMITS_SHIM, shim)
        os.chmod(shim, 0o444)
        return [
            python,
            "-I",
            str(shim),
            *self.rlimits(),
            "--",
            program,
            *[self.map(arg) for arg in rest],
        ]

    def rlimits(self) -> list[str]:
        """name=value pairs for the limits shim (it sets what the OS offers and skips the rest)."""
        limits = self.limits
        pairs = {
            "DATA": limits.memory_bytes,
            "CPU": int(self.spec.timeout_s) + 1,
            "NOFILE": 4096,
            "CORE": 0,
            "NPROC": processes_of(self.uid()) + limits.pids if _LINUX else None,
        }
        writable = [
            m.scratch.size_bytes
            for m in self.spec.mounts
            if isinstance(m, ScratchMount) and not m.read_only
        ]
        if writable:
            pairs["FSIZE"] = max(writable)
        return [f"{name}={value}" for name, value in pairs.items() if value is not None]

    def uid(self) -> int:
        return 0 if self.spec.user_switching and os.getuid() == 0 else run_ids()[0]

    def env(self) -> dict[str, str]:
        env = {name: self.map(value) for name, value in self.spec.env.items()}
        env.setdefault("HOME", str(self.root / "tmp"))
        env["TMPDIR"] = str(self.root / "tmp")
        # No pid namespace here: call_train may not kill "every process of the worker's uid".
        env["OVERNIGHT_HOST_PIDS"] = "1"
        python = Path(python_for(run_ids()[0])).parent
        env["PATH"] = os.pathsep.join([str(python), "/usr/local/bin", "/usr/bin", "/bin"])
        return env

    def run(self) -> RunResult:
        import subprocess

        uid = self.uid()
        switch = uid != os.getuid()
        self.started = time.monotonic()
        with OrphansComeToUs() as orphans:
            process = subprocess.Popen(
                self.command(),
                cwd=self.map(self.spec.workdir),
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=uid if switch else None,
                group=(NOBODY if uid == NOBODY else uid) if switch else None,
                extra_groups=[] if switch else None,
            )
            reader = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
            reader.start()
            code, peak, timed_out = self._wait(process.pid)
            kill_group(process.pid)
            orphans.kill_all(exclude=process.pid)
            reader.join(timeout=5)
        wall = time.monotonic() - self.started
        output = bytes(self.tail[-self.limits.output_cap_bytes :]).decode("utf-8", "replace")
        return RunResult(
            status=self._status(code, timed_out, output),
            exit_code=None if timed_out else code,
            wall_s=round(wall, 3),
            output_tail=output,
            peak_memory_bytes=peak,
        )

    def _wait(self, pid: int) -> tuple[int | None, int, bool]:
        deadline = self.started + self.spec.timeout_s
        while True:
            done, status, usage = os.wait4(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status), _maxrss_bytes(usage), False
            if time.monotonic() >= deadline:
                kill_group(pid)
                _, status, usage = os.wait4(pid, 0)
                return None, _maxrss_bytes(usage), True
            time.sleep(0.02)

    def _read(self, stream: Any) -> None:
        cap = self.limits.output_cap_bytes
        while chunk := stream.read1(1 << 16):
            self.tail += chunk
            if len(self.tail) > 2 * cap:
                del self.tail[:-cap]

    def _status(self, code: int | None, timed_out: bool, output: str) -> RunStatus:
        if timed_out:
            return RunStatus.TIMEOUT
        if code == 0:
            return RunStatus.OK
        if "MemoryError" in output[-4096:] or code == -signal.SIGKILL:
            return RunStatus.OOM  # the memory limit made an allocation fail
        return RunStatus.CRASH


def _maxrss_bytes(usage: resource.struct_rusage) -> int:
    return usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def _give_to_runs(path: Path, mode: int | None = 0o755) -> None:
    uid, gid = run_ids()
    if os.getuid() == 0:
        os.lchown(path, uid, gid)
    if mode is not None:
        os.chmod(path, mode)


def _copy_back(source: Path, target: Path) -> None:
    """Plain files and folders only: a link or a device the run made is not followed or copied."""
    for folder, _, files in tree.walk(source):
        destination = target / os.path.relpath(folder, source)
        destination.mkdir(exist_ok=True)
        for name in files:
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not os.path.islink(path):
                shutil.copyfile(path, destination / name, follow_symlinks=False)


def _copy_read_only(source: Path, target: Path) -> None:
    """A copy with the owners and modes of the original (the private data stays the evaluator's
    alone), minus every write bit."""
    if source.is_dir():  # over what an outer mount put there (a placeholder for this one)
        shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
    else:
        if target.is_file() and not target.is_symlink():
            target.unlink()
        shutil.copy2(source, target)
    if os.getuid() == 0:
        for folder, dirs, files in tree.walk(source):
            for name in [".", *dirs, *files]:
                info = os.lstat(os.path.join(folder, name))
                copy = os.path.join(target, os.path.relpath(os.path.join(folder, name), source))
                os.lchown(copy, info.st_uid, info.st_gid)
    _make_read_only(target)


def _make_read_only(path: Path) -> None:
    """Drop every write bit under `path`, at most tree.MAX_DEPTH deep (the evaluator's output
    check refuses deeper folders anyway)."""
    for folder, dirs, files in tree.walk(path):
        for name in [*files, *dirs]:
            _drop_write_bits(os.path.join(folder, name))
    _drop_write_bits(str(path))


def _drop_write_bits(path: str) -> None:
    with contextlib.suppress(OSError):
        info = os.lstat(path)
        if not os.path.islink(path):
            os.chmod(path, info.st_mode & 0o7555)


def _remove_tree(path: Path) -> None:
    """Remove a tree that runs may have made read-only, at any depth."""
    tree.remove(path)


def local_report(limits: Limits, output_dir_bytes: int) -> list[str]:
    """What --sandbox local does and does not isolate, one line per item."""
    uid, gid = run_ids()
    return [
        "WEAKER ISOLATION: --sandbox local runs train.py as a local process",
        "network: NOT isolated",
        "filesystem: NOT isolated; a temporary copy of the files, the held-out data readable",
        f"user: {uid}:{gid}" + (" (nobody, since overnight runs as root)" if uid == NOBODY else ""),
        "process group and session of its own; killed with all descendants at the deadline",
        f"memory: RLIMIT_DATA {limits.memory_bytes} bytes"
        + ("" if _LINUX else " (if the OS has it)"),
        f"processes: RLIMIT_NPROC (+{limits.pids})" if _LINUX else "processes: NOT limited",
        f"files: none larger than the output directory ({output_dir_bytes} bytes), 4096 open",
        "cpu time: RLIMIT_CPU at the hard timeout",
        f"output tail kept: {limits.output_cap_bytes} bytes",
        "environment: only overnight's own variables (no API keys)",
        "evaluator: a process of its own; call_train workers as another uid only when root",
    ]
