"""The sandbox contract, against every backend (the real Docker engine and --sandbox local):
classified results, a deadline that holds for code that fights it, capped output, a size-capped
scratch area, no host environment, and nothing left running. Docker's lockdown is tested last."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from harness.seams import Mount, RunSpec, RunStatus, ScratchMount
from sandbox.docker_sandbox import DockerSandbox, Limits, SandboxError
from sandbox.hardening import HardeningError, check_engine
from sandbox.image import DEFAULT_IMAGE
from sandbox.labels import LABEL, LABEL_PID, LABEL_RUN, owned
from sandbox.local_sandbox import LocalSandbox

MiB = 1024 * 1024
LIMITS = Limits(
    memory_bytes=256 * MiB, cpus=1, pids=128, tmpfs_bytes=16 * MiB, output_cap_bytes=64 * 1024
)


@pytest.fixture(params=["docker", "local"])
def sandbox(request):
    """Each backend; the local one needs no engine (it is for machines without one)."""
    if request.param == "docker":
        request.getfixturevalue("no_leftover_containers")
        return DockerSandbox(LIMITS, run_id="test", client=request.getfixturevalue("docker_client"))
    return LocalSandbox(LIMITS, run_id="test")


@pytest.fixture
def docker_sandbox(docker_client, no_leftover_containers):
    return DockerSandbox(LIMITS, run_id="test", client=docker_client)


def python(code: str, timeout: float = 20, mounts=(), env=None) -> RunSpec:
    return RunSpec(
        image=DEFAULT_IMAGE,
        command=["python3", "-c", code],
        mounts=list(mounts),
        env=env or {},
        timeout_s=timeout,
    )


def test_a_clean_exit_is_ok_with_its_output(sandbox):
    result = sandbox.run(python("print('hello'); print(sum([1.0, 2.0]))"))
    assert result.status is RunStatus.OK and result.exit_code == 0
    assert result.output_tail.split() == ["hello", "3.0"]


def test_a_nonzero_exit_is_a_crash_with_its_code_and_traceback(sandbox):
    result = sandbox.run(python("raise ValueError('bad idea')"))
    assert result.status is RunStatus.CRASH and result.exit_code == 1
    assert "ValueError: bad idea" in result.output_tail


def test_the_deadline_kills_code_that_ignores_sigterm_and_its_escaped_children(sandbox):
    code = """
import os, signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
if os.fork() == 0:
    os.setsid()  # a child in a session of its own, meant to outlive the run
    print("child", os.getpid(), flush=True)
    while True:
        time.sleep(0.05)
while True:
    time.sleep(0.1)
"""
    started = time.monotonic()
    result = sandbox.run(python(code, timeout=2))
    assert result.status is RunStatus.TIMEOUT and result.exit_code is None
    assert 2 <= result.wall_s < 4
    assert time.monotonic() - started < 8
    if isinstance(sandbox, LocalSandbox):  # a container's processes die with it
        child = int(result.output_tail.split("child")[1].split()[0])
        with pytest.raises(ProcessLookupError):
            os.kill(child, 0)


def test_a_memory_bomb_is_oom_not_timeout(sandbox):
    result = sandbox.run(
        python("chunks = []\nwhile True: chunks.append(bytearray(16 * 1024 * 1024))", timeout=30)
    )
    assert result.status is RunStatus.OOM


def test_a_fork_bomb_is_contained_and_ends_with_the_run(sandbox):
    code = """
import os, time
children = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        children += 1
except OSError as err:
    print("fork refused after", children, "children:", err.strerror, flush=True)
time.sleep(60)
"""
    result = sandbox.run(python(code, timeout=3))
    assert result.status is RunStatus.TIMEOUT
    assert "fork refused after" in result.output_tail
    # (other processes of the same uid count too, so the bound is approximate)
    assert int(result.output_tail.split("after")[1].split()[0]) <= 2 * LIMITS.pids


def test_a_flood_of_output_keeps_only_the_tail(sandbox):
    code = "import sys\nfor i in range(200000): print('line', i)\nprint('THE END')"
    result = sandbox.run(python(code))
    assert result.status is RunStatus.OK
    assert result.output_tail.rstrip().endswith("THE END")
    assert len(result.output_tail.encode()) <= 64 * 1024


def test_a_scratch_area_outlives_a_run_is_read_only_later_and_size_capped(sandbox):
    # Paths come from the environment, as in a task: --sandbox local maps them, not literals.
    write = """
import os
out = os.environ["OUT"]
open(os.path.join(out, "kept.txt"), "w").write("from the first run")
try:
    with open(os.path.join(out, "big.bin"), "wb") as handle:
        handle.write(b"x" * (2 * 1024 * 1024))
    print("wrote 2m")
except OSError as err:
    print("too big:", err.strerror)
"""
    read = """
import os
out = os.environ["OUT"]
print(open(os.path.join(out, "kept.txt")).read())
try:
    open(os.path.join(out, "more.txt"), "w").write("x")
    print("wrote")
except OSError:
    print("read-only")
"""
    env = {"OUT": "/overnight/out"}
    with sandbox.scratch(1 * MiB) as scratch:
        writable = [ScratchMount(scratch, "/overnight/out", read_only=False)]
        first = sandbox.run(python(write, mounts=writable, env=env))
        second = sandbox.run(
            python(read, mounts=[ScratchMount(scratch, "/overnight/out")], env=env)
        )
    assert "too big:" in first.output_tail and "wrote 2m" not in first.output_tail
    assert second.output_tail.split("\n")[:2] == ["from the first run", "read-only"]


def test_no_host_environment_variable_reaches_the_code(sandbox, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-must-not-leak")
    monkeypatch.setenv("OVERNIGHT_TEST_SECRET", "must-not-leak")
    code = "import os\nprint(sorted(os.environ))\nprint('leak' if 'must-not-leak' in str(os.environ) else 'clean')"
    result = sandbox.run(python(code, env={"MINE": "1"}))
    assert result.output_tail.split("\n")[1] == "clean"
    assert "ANTHROPIC_API_KEY" not in result.output_tail and "'MINE'" in result.output_tail


# --- Docker only -------------------------------------------------------------------------------


def test_the_lifecycle_opens_prepares_runs_and_closes_with_nothing_left(sandbox):
    said: list[str] = []
    sandbox.say = said.append
    sandbox.open()
    sandbox.open()  # once it answered, again is nothing
    sandbox.prepare(DEFAULT_IMAGE)
    with sandbox.scratch(MiB, lifetime_s=60) as scratch:
        write = python(
            "import os; open(os.environ['OUT'] + '/f', 'w').write('x')",
            mounts=[ScratchMount(scratch, "/overnight/out", False)],
            env={"OUT": "/overnight/out"},
        )
        assert sandbox.run(write).status is RunStatus.OK
    sandbox.close()
    assert sandbox.remove_leftovers() == 0
    local = isinstance(sandbox, LocalSandbox)
    assert any("WEAKER ISOLATION" in line for line in said) == local


def test_prepare_removes_what_a_dead_harness_left_and_close_what_this_run_left(
    docker_client, no_leftover_containers
):
    gone = subprocess.Popen(["true"])
    gone.wait()  # a harness that died: its pid is free
    dead = {LABEL: "1", LABEL_RUN: "dead-night", LABEL_PID: str(gone.pid)}
    orphan = docker_client.containers.create(DEFAULT_IMAGE, ["sleep", "60"], labels=dead)
    left = docker_client.containers.create(DEFAULT_IMAGE, ["sleep", "60"], labels=owned("night"))
    sandbox = DockerSandbox(LIMITS, run_id="night")  # it connects on its own at `open`

    def present() -> set[str]:
        return {c.id for c in docker_client.containers.list(all=True, ignore_removed=True)}

    sandbox.open()
    sandbox.prepare(DEFAULT_IMAGE)
    assert orphan.id not in present() and left.id in present()  # this harness is alive
    sandbox.close()
    assert left.id not in present()


def test_the_container_is_locked_down(docker_sandbox, tmp_path):
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
print("pid 1", open("/proc/1/cmdline").read().split(chr(0))[:4])
"""
    (tmp_path / "ro").mkdir()
    os.environ["OVERNIGHT_TEST_SECRET_KEY"] = "must-not-leak"
    try:
        result = docker_sandbox.run(python(code, mounts=[Mount(tmp_path / "ro", "/overnight/ro")]))
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
    assert "pid 1 ['python3', '-I', '-S', '-c']" in out  # the enforcer, not Docker's init
    assert not (tmp_path / "ro" / "x").exists()


def test_a_missing_image_is_a_clear_error_and_never_a_pull(docker_sandbox):
    spec = RunSpec(
        image="overnight/not-built:never", command=["true"], mounts=[], env={}, timeout_s=5
    )
    with pytest.raises(SandboxError, match="not on this machine"):
        docker_sandbox.run(spec)


def test_a_runtime_the_engine_lacks_is_refused_in_one_line(docker_client):
    limits = Limits(**{**LIMITS.__dict__, "runtime": "runsc-not-installed"})
    with pytest.raises(HardeningError) as refused:
        check_engine(docker_client, limits, DEFAULT_IMAGE)
    message = str(refused.value)
    assert "\n" not in message and "runsc-not-installed" in message and "runc" in message


def test_gpus_on_an_engine_without_gpu_support_are_refused_in_one_line(
    docker_client, no_leftover_containers
):
    limits = Limits(**{**LIMITS.__dict__, "gpus": ("all",)})
    with pytest.raises(HardeningError) as refused:
        check_engine(docker_client, limits, DEFAULT_IMAGE)
    assert "\n" not in str(refused.value) and "sandbox.gpus" in str(refused.value)


def test_the_output_volume_keeper_ends_by_its_own_deadline_and_is_removed(
    docker_sandbox, docker_client
):
    """A keeper lives as long as the experiment may, not until someone removes it."""
    keepers = {"label": [f"org.overnight.pid={os.getpid()}", "org.overnight.purpose=keeper"]}
    with docker_sandbox.scratch(1 * MiB, lifetime_s=4) as scratch:
        writable = [ScratchMount(scratch, "/overnight/out", read_only=False)]
        docker_sandbox.run(python("open('/overnight/out/a', 'w').write('kept')", mounts=writable))
        started = time.monotonic()
        read = docker_sandbox.run(
            python(
                "print(open('/overnight/out/a').read())",
                mounts=[ScratchMount(scratch, "/overnight/out")],
            )
        )
        assert read.output_tail.strip() == "kept"
        assert docker_client.containers.list(filters=keepers)
        while docker_client.containers.list(all=True, ignore_removed=True, filters=keepers):
            assert time.monotonic() - started < 4 + 5, "the keeper outlived its deadline"
            time.sleep(0.2)


@pytest.fixture
def image_without_python(docker_client):
    """overnight's image with python3 deleted: what a user's minimal image may look like."""
    name = f"overnight/test-no-python:{os.getpid()}"
    builder = docker_client.containers.run(
        DEFAULT_IMAGE, ["sh", "-c", "rm -f /usr/bin/python3*"], user="0:0", detach=True
    )
    try:
        builder.wait(timeout=60)
        builder.commit(*name.split(":"))
    finally:
        builder.remove(force=True)
    yield name
    docker_client.images.remove(name, force=True)


def test_an_image_without_python3_runs_under_docker_init_and_timeout_and_says_so(
    docker_client, no_leftover_containers, image_without_python
):
    said: list[str] = []
    sandbox = DockerSandbox(LIMITS, run_id="test", client=docker_client, say=said.append)
    spec = RunSpec(image_without_python, ["sh", "-c", "echo hi; sleep 60"], [], {}, timeout_s=2)
    result = sandbox.run(spec)
    assert result.status is RunStatus.TIMEOUT and "hi" in result.output_tail
    assert sandbox.deadline_mode(image_without_python) == "timeout"
    assert len(said) == 1 and "no python3" in said[0] and "timeout -s KILL" in said[0]
