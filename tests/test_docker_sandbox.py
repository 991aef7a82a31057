"""The sandbox contract, against the real Docker engine: classified results, a deadline that holds,
and a container that is locked down and always removed."""

from __future__ import annotations

import os
import time

import pytest

from harness.seams import Mount, RunSpec, RunStatus
from sandbox.docker_sandbox import DockerSandbox, Limits, SandboxError
from sandbox.image import DEFAULT_IMAGE

MiB = 1024 * 1024


@pytest.fixture
def sandbox(docker_client, no_leftover_containers):
    limits = Limits(
        memory_bytes=256 * MiB, cpus=1, pids=128, tmpfs_bytes=16 * MiB, output_cap_bytes=64 * 1024
    )
    return DockerSandbox(limits, run_id="test", client=docker_client)


def python(code: str, timeout: float = 20, mounts=(), env=None) -> RunSpec:
    return RunSpec(
        image=DEFAULT_IMAGE,
        command=["python3", "-c", code],
        mounts=list(mounts),
        env=env or {},
        timeout_s=timeout,
    )


def test_a_clean_exit_is_ok_with_its_output(sandbox):
    result = sandbox.run(python("print('hello'); import numpy; print(numpy.ones(3).sum())"))
    assert result.status is RunStatus.OK and result.exit_code == 0
    assert result.output_tail.split() == ["hello", "3.0"]


def test_a_nonzero_exit_is_a_crash_with_its_code_and_traceback(sandbox):
    result = sandbox.run(python("raise ValueError('bad idea')"))
    assert result.status is RunStatus.CRASH and result.exit_code == 1
    assert "ValueError: bad idea" in result.output_tail


def test_the_deadline_kills_code_that_ignores_sigterm(sandbox):
    code = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True: time.sleep(0.1)"
    started = time.monotonic()
    result = sandbox.run(python(code, timeout=2))
    assert result.status is RunStatus.TIMEOUT and result.exit_code is None
    assert 2 <= result.wall_s < 4
    assert time.monotonic() - started < 8


def test_a_memory_bomb_is_oom_not_timeout(sandbox):
    result = sandbox.run(
        python("chunks = []\nwhile True: chunks.append(bytearray(16 * 1024 * 1024))", timeout=30)
    )
    assert result.status is RunStatus.OOM


def test_a_flood_of_output_keeps_only_the_tail(sandbox):
    code = "import sys\nfor i in range(200000): print('line', i)\nprint('THE END')"
    result = sandbox.run(python(code))
    assert result.status is RunStatus.OK
    assert result.output_tail.rstrip().endswith("THE END")
    assert len(result.output_tail.encode()) <= 64 * 1024


def test_the_container_is_locked_down(sandbox, tmp_path):
    code = """
import os, socket
print("uid", os.getuid())
for path in ("/", "/etc", "/overnight/ro"):
    try:
        open(os.path.join(path, "x"), "w").write("x")
        print("wrote", path)
    except OSError:
        print("cannot write", path)
open("/tmp/scratch", "w").write("ok")
print("tmp ok")
try:
    socket.create_connection(("192.0.2.1", 80), timeout=2)
    print("network reached")
except OSError as err:
    print("no network")
print("ifaces", sorted(name for _, name in socket.if_nameindex()))
status = open("/proc/self/status").read()
print([line for line in status.splitlines() if line.startswith(("CapEff", "NoNewPrivs"))])
print("keys", [k for k in os.environ if "KEY" in k])
"""
    (tmp_path / "ro").mkdir()
    os.environ["OVERNIGHT_TEST_SECRET_KEY"] = "must-not-leak"
    try:
        result = sandbox.run(python(code, mounts=[Mount(tmp_path / "ro", "/overnight/ro")]))
    finally:
        del os.environ["OVERNIGHT_TEST_SECRET_KEY"]
    out = result.output_tail
    assert result.status is RunStatus.OK, out
    assert "uid 0" not in out
    assert (
        "cannot write /\n" in out
        and "cannot write /etc" in out
        and "cannot write /overnight/ro" in out
    )
    assert "tmp ok" in out and "no network" in out and "ifaces ['lo']" in out
    assert "CapEff:\\t0000000000000000" in out and "NoNewPrivs:\\t1" in out
    assert "keys []" in out
    assert not (tmp_path / "ro" / "x").exists()


def test_a_missing_image_is_a_clear_error_and_never_a_pull(sandbox):
    spec = RunSpec(
        image="overnight/not-built:never", command=["true"], mounts=[], env={}, timeout_s=5
    )
    with pytest.raises(SandboxError, match="not on this machine"):
        sandbox.run(spec)
