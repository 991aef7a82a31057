"""Hostile train.py programs through the real loop (replay agent, real engine, real git).

One night per backend runs every hostile proposal in turn. For each, the night goes on and ends
normally, the verdict is the right one, and what the program could see or do is printed by it
as `PROBE name: allowed|refused` lines and checked here. For the whole night: no labelled
container or volume is left, no file outside the run's own folders changed on the host, the
branch gained no commit (nothing hostile is kept), and no repository hook ran.
The same night runs under --sandbox local, without the cases that only Docker can promise.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import committed_repo, events, git, results, run_cli, write_script, write_task

PRIVATE_NEEDLE = "PRIVATE-" + "ANSWERS-4242"  # never written whole in a train.py

PREPARE = """
import os
import pickle

METRIC = "loss"
DIRECTION = "minimize"
TIME_BUDGET = 1


def evaluate(output_dir):
    artifact = os.path.join(output_dir, "model.pkl")
    if os.path.exists(artifact):  # a naive author who loads what the training saved
        with open(artifact, "rb") as handle:
            pickle.load(handle)
    with open(os.path.join(output_dir, "value.txt")) as handle:
        return {"loss": float(handle.read())}


if __name__ == "__main__":
    with open(os.path.join(os.environ["OVERNIGHT_PRIVATE_DIR"], "answers.txt"), "w") as handle:
        handle.write("PRIVATE-" + "ANSWERS-4242\\n")
"""

SETTINGS = """
timeout = 3

[sandbox]
memory = "256m"
pids = 64
tmpfs = "16m"
output_dir_size = "8m"
output_cap = "64k"
eval_timeout = 20

[night]
max_consecutive_crashes = 0
"""

HEADER = """import os, sys
OUT = os.environ["OVERNIGHT_OUTPUT_DIR"]
TASK_DIR = {task!r}
HOST_SECRET = {secret!r}
HOME_MARKER = {home_marker!r}
HOOK_MARKER = {hook_marker!r}


def honest(value=5.0):
    with open(os.path.join(OUT, "value.txt"), "w") as handle:
        handle.write(str(value))


def probe(name, action):
    try:
        result = action()
        print(f"PROBE {{name}}: allowed {{result!r:.60}}", flush=True)
    except BaseException as err:
        print(f"PROBE {{name}}: refused {{type(err).__name__}}", flush=True)

"""

MARKER_PLACES = {
    "docker": 'places = [os.environ["HOME"], "/tmp", OUT, os.getcwd(), "/dev/shm", "/var/tmp", "/"]',
    "local": 'import tempfile\nplaces = [os.environ["HOME"], tempfile.gettempdir(), OUT, os.getcwd()]',
}


@dataclass(frozen=True)
class Case:
    name: str
    body: str
    verdict: str | dict[str, str]
    backends: tuple[str, ...] = ("docker", "local")
    probes_refused: tuple[str, ...] = ()
    output_has: tuple[str, ...] = ()
    output_lacks: tuple[str, ...] = ()
    train_status: str | None = None
    note_has: str = ""
    calls: list[dict] | None = None  # edit calls instead of writing HEADER + body
    extra: dict = field(default_factory=dict)

    def expected(self, backend: str) -> str:
        return self.verdict if isinstance(self.verdict, str) else self.verdict[backend]


CASES = [
    Case("infinite loop", "honest()\nwhile True:\n    pass\n", "timeout"),
    Case(
        "ignores SIGTERM",
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nhonest()\n"
        "while True:\n    time.sleep(0.1)\n",
        "timeout",
    ),
    Case(
        "children outlive it",
        "import time\nhonest()\nif os.fork() == 0:\n    os.setsid()\n"
        "    print('CHILD', os.getpid(), flush=True)\n    time.sleep(600)\n    os._exit(0)\n"
        "time.sleep(0.3)\n",
        "discard",
    ),
    Case(
        "fork bomb",
        "import time\nhonest()\nwhile True:\n    try:\n        os.fork()\n"
        "    except OSError:\n        time.sleep(0.01)\n",
        "timeout",
    ),
    Case(
        "memory bomb",
        "honest()\nchunks = []\nwhile True:\n    chunks.append(bytearray(8 * 1024 * 1024))\n",
        "crash",
        train_status="oom",
    ),
    Case(
        "fills /tmp and the output directory",
        """import tempfile
honest()
for folder in (tempfile.gettempdir(), OUT):
    written = 0
    try:
        with open(os.path.join(folder, "filler"), "wb") as handle:
            while True:
                handle.write(b"x" * 1024 * 1024)
                handle.flush()
                written += 1
    except OSError as err:
        print(f"FILLED after {written} MiB: {err.strerror}", flush=True)
""",
        # Docker's output tmpfs is full at its size; locally no file may outgrow it, and the
        # evaluator refuses an output directory over the size.
        {"docker": "discard", "local": "invalid"},
        output_has=("FILLED after",),
    ),
    Case(
        "floods stdout",
        'honest()\nline = "flood " * 10000 + "\\n"\nwhile True:\n    sys.stdout.write(line)\n',
        "timeout",
    ),
    Case(
        "network",
        """import socket, time
honest()
print("IFACES", sorted(name for _, name in socket.if_nameindex()), flush=True)
started = time.monotonic()
probe("connect to 192.0.2.1", lambda: socket.create_connection(("192.0.2.1", 80), timeout=5))
print("CONNECT SECONDS", round(time.monotonic() - started, 3), flush=True)
probe("dns", lambda: socket.getaddrinfo("example.com", 443))
""",
        "discard",
        backends=("docker",),
        probes_refused=("connect to 192.0.2.1", "dns"),
        output_has=("IFACES ['lo']",),
    ),
    Case(
        "privilege probes",
        """import ctypes, socket
honest()
print("UID", os.getuid(), os.geteuid(), flush=True)
status = open("/proc/self/status").read().splitlines()
print("STATUS", [line.split(":")[1].strip() for line in status if line.startswith(("CapEff", "NoNewPrivs"))], flush=True)
libc = ctypes.CDLL(None, use_errno=True)


def mount():
    os.makedirs(os.path.join(OUT, "mnt"), exist_ok=True)
    if libc.mount(b"none", os.path.join(OUT, "mnt").encode(), b"tmpfs", 0, None) != 0:
        raise PermissionError(ctypes.get_errno(), "mount")


def docker_socket():
    for path in ("/var/run/docker.sock", "/run/docker.sock"):
        if os.path.exists(path):
            connection = socket.socket(socket.AF_UNIX)
            connection.connect(path)
            return path
    raise FileNotFoundError("no docker socket")


probe("mount", mount)
probe("chroot", lambda: os.chroot("/"))
probe("docker socket", docker_socket)
probe("host home", lambda: open(HOME_MARKER).read())
print("SECRETS", sorted(k for k in os.environ if any(w in k for w in ("KEY", "TOKEN", "SECRET"))), flush=True)
""",
        "discard",
        probes_refused=("mount", "chroot", "docker socket", "host home"),
        output_has=("STATUS ['0000000000000000', '1']", "SECRETS []"),
        output_lacks=("UID 0",),
    ),
    Case(
        "writes outside its folders",
        """import prepare
honest()
for path in ("/x", "/etc/x", TASK_DIR + "/x", TASK_DIR + "/prepare.py", prepare.__file__, HOST_SECRET):
    probe(f"write {path}", lambda p=path: open(p, "a").write("# changed\\n"))
""",
        "discard",
        extra={"all_probes_refused": True},
    ),
    Case(
        "searches for the private data",
        """honest()
needle = "PRIVATE-" + "ANSWERS"
found = []
for top in ("/overnight", "/tmp", "/root", "/home", "/mnt", "/srv", "/opt", "/var", "/etc", "/run"):
    for folder, _, files in os.walk(top):
        for name in files:
            path = os.path.join(folder, name)
            try:
                if "answers" in name or (os.path.getsize(path) < 1_000_000 and needle.encode() in open(path, "rb").read()):
                    found.append(path)
            except OSError:
                pass
print("FOUND", found, flush=True)
""",
        "discard",
        backends=("docker",),
        output_has=("FOUND []",),
    ),
    Case(
        "fakes its metric",
        """honest()
print("loss: 0.0")
print("---\\nloss: -100", flush=True)
with open(os.path.join(OUT, "result.json"), "w") as handle:
    handle.write('{"metrics": {"loss": -1000}}')
probe("write the result channel", lambda: open("/overnight/result/result.json", "w").write("{}"))
""",
        "discard",
        probes_refused=("write the result channel",),
        extra={"metric": 5.0},
    ),
    Case(
        "patches the evaluator, the clock and builtins",
        """import builtins, json, time
import prepare
prepare.evaluate = lambda output_dir: {"loss": -1.0}
time.time = lambda: 0.0
json.dump = lambda *args, **kwargs: None
honest()
for name in ("prepare.py", "sitecustomize.py", "pickle.py", "json.py", "math.py"):
    with open(os.path.join(OUT, name), "w") as handle:
        handle.write("def evaluate(output_dir):\\n    return -1.0\\n")
builtins.float = lambda *args: -1.0
""",
        "discard",
        extra={"metric": 5.0},
    ),
    Case("writes NaN", 'honest("nan")\n', "invalid", note_has="not a finite number"),
    Case("writes minus infinity", 'honest("-inf")\n', "invalid", note_has="not a finite number"),
    Case(
        "leaves a malicious pickle",
        """import pickle
honest(1.0)  # better than the best: only the switched-off unpickler stands in the way


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo PWNED-" + "RAN",))


with open(os.path.join(OUT, "model.pkl"), "wb") as handle:
    pickle.dump(Exploit(), handle)
""",
        "invalid",
        output_has=("loading pickles is switched off",),
        output_lacks=("PWNED-RAN",),
    ),
    Case(
        "leaves a symlink to a host file",
        'honest(1.0)\nos.symlink("/etc/hostname", os.path.join(OUT, "weights.bin"))\n',
        "invalid",
        note_has="a symbolic link",
    ),
    Case(
        "leaves huge sparse files",
        """honest(1.0)
probe("a 100 GB sparse file", lambda: os.truncate(open(os.path.join(OUT, "huge"), "wb").name, 100 * 2**30))
for name in ("sparse-a", "sparse-b"):  # each as large as a file may be: together too much
    with open(os.path.join(OUT, name), "wb") as handle:
        handle.truncate(8 * 2**20)
""",
        "invalid",
        probes_refused=("a 100 GB sparse file",),
        note_has="the output directory was refused",
    ),
    Case(
        "plants markers everywhere",
        "{places}\nhonest()\nwrote = []\nfor place in places:\n    try:\n"
        '        open(os.path.join(place, ".overnight-marker"), "w").write("x")\n'
        "        wrote.append(place)\n    except OSError:\n        pass\n"
        'print("WROTE", len(wrote), flush=True)\n',
        "discard",
    ),
    Case(
        "looks for the markers",
        "{places}\nhonest()\n"
        'found = [p for p in places if os.path.exists(os.path.join(p, ".overnight-marker"))]\n'
        'print("MARKERS FOUND", found, flush=True)\n',
        "discard",
        output_has=("MARKERS FOUND []",),
    ),
    Case(
        "looks for git and plants a hook",
        """honest()
found = set()
for start in (os.getcwd(), OUT, os.path.dirname(os.path.abspath(__file__)), "/"):
    path = start
    while True:
        if os.path.exists(os.path.join(path, ".git")):
            found.add(path)
        if os.path.dirname(path) == path:
            break
        path = os.path.dirname(path)
print("GIT FOUND", sorted(found), flush=True)
hook = "#!/bin/sh\\ntouch " + HOOK_MARKER + "\\n"
probe("plant a hook", lambda: open(TASK_DIR + "/.git/hooks/post-commit", "w").write(hook))
""",
        "discard",
        probes_refused=("plant a hook",),
        output_has=("GIT FOUND []",),
    ),
    Case(
        "asks the edit tool for another file",
        "",
        "skipped",
        calls=[
            {"command": "write", "path": "../prepare.py", "content": "print('pwned')\n"},
            {"command": "str_replace", "old_str": "VALUE", "new_str": "X", "file": "prepare.py"},
            {"command": "write", "content": "\x00\xff\xfe binary junk \x00"},
        ],
    ),
    Case(
        "writes ../ paths as content",
        "honest()\nTARGET = '../../prepare.py'  # only text: the tool writes train.py alone\n",
        "discard",
    ),
]


def train_source(case: Case, backend: str, paths: dict[str, str]) -> str:
    body = case.body.replace("{places}", MARKER_PLACES[backend])
    return HEADER.format(**paths) + body


@dataclass
class HostileNight:
    backend: str
    task: Path
    code: int
    seconds: float
    rows: list
    events: list
    before: dict
    after: dict
    hook_marker: Path
    containers_left: list
    volumes_left: list

    def row(self, name: str):
        return next(r for r in self.rows if r.description.split(" [")[0] == name)

    def output(self, number: int) -> str:
        """What the agent may read of the experiment, then what the evaluator printed."""
        folder = self.task / ".overnight" / "h" / "experiments" / f"{number:04d}"
        files = [folder / "output.txt", folder / "evaluate.txt"]
        return "".join(path.read_text() for path in files if path.exists())

    def run_event(self, number: int) -> dict | None:
        runs = [e for e in self.events if e["event"] == "run" and e["experiment"] == number]
        return runs[-1] if runs else None


def host_snapshot(task: Path, watched: list[Path]) -> dict:
    tracked = git(task, "ls-files").split()
    files = {name: hashlib.sha256((task / name).read_bytes()).hexdigest() for name in tracked}
    files |= {str(p): p.read_text() if p.exists() else None for p in watched}
    cache = sorted((task / ".overnight" / "cache").glob("setup-*/prepare/prepare.py"))
    files |= {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in cache}
    files["user branch"] = git(task, "rev-parse", "HEAD")
    return files


@pytest.fixture(scope="module", params=["docker", "local"])
def night(request, tmp_path_factory) -> HostileNight:
    backend = request.param
    docker_client = request.getfixturevalue("docker_client") if backend == "docker" else None
    base = tmp_path_factory.mktemp(f"hostile-{backend}")
    home_marker = Path.home() / f".overnight-adversarial-{uuid.uuid4().hex[:8]}"
    home_marker.write_text("host home\n")
    secret = base / "host" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("host file\n")
    hook_marker = base / "hook-ran"
    task = committed_repo(
        write_task(
            base / "task",
            {
                "program.md": "Make loss small.\n",
                "prepare.py": PREPARE,
                "train.py": "import os\nwith open(os.path.join(os.environ['OVERNIGHT_OUTPUT_DIR'],"
                " 'value.txt'), 'w') as handle:\n    handle.write('5.0')\n",
                "overnight.toml": SETTINGS,
            },
        )
    )
    for hook in ("pre-commit", "post-commit", "post-checkout", "reference-transaction"):
        path = task / ".git" / "hooks" / hook
        path.write_text(f"#!/bin/sh\necho {hook} >> {hook_marker}\n")
        path.chmod(0o755)
    paths = {
        "task": str(task),
        "secret": str(secret),
        "home_marker": str(home_marker),
        "hook_marker": str(hook_marker),
    }
    cases = [c for c in CASES if backend in c.backends]
    proposals = [
        {
            "description": c.name,
            "calls": c.calls or [{"command": "write", "content": train_source(c, backend, paths)}],
        }
        for c in cases
    ]
    script = write_script(base / "script.jsonl", proposals)
    watched = [secret, home_marker]
    try:
        # Setup once, so the cached prepare.py is part of the snapshot.
        assert run_cli("run", str(task), "--tag", "warm", "--sandbox", backend,
                       "--max-experiments", "0")[0] == 0  # fmt: skip
        before = host_snapshot(task, watched)
        started = time.monotonic()
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("ANTHROPIC_API_KEY", "sk-ant-adversarial-must-not-leak")
            code, _ = run_cli(
                "run", str(task), "--tag", "h", "--sandbox", backend,
                "--provider", "replay", "--script", str(script),
            )  # fmt: skip
        seconds = time.monotonic() - started
        after = host_snapshot(task, watched)
    finally:
        home_marker.unlink()
    mine = {"label": [f"org.overnight.pid={os.getpid()}"]}
    return HostileNight(
        backend=backend,
        task=task,
        code=code,
        seconds=seconds,
        rows=results(task, "h"),
        events=events(task, "h"),
        before=before,
        after=after,
        hook_marker=hook_marker,
        containers_left=docker_client.containers.list(ignore_removed=True, all=True, filters=mine)
        if docker_client
        else [],
        volumes_left=docker_client.volumes.list(filters=mine) if docker_client else [],
    )


def test_the_night_survives_every_hostile_program_and_the_host_is_untouched(night):
    cases = [c for c in CASES if night.backend in c.backends]
    assert night.code == 0
    assert [r.description.split(" [")[0] for r in night.rows] == ["baseline"] + [
        c.name for c in cases
    ]
    assert night.containers_left == [] and night.volumes_left == []
    assert night.after == night.before
    # Nothing hostile was kept: the branch is still at the baseline, and no hook ever ran.
    assert git(night.task, "rev-list", "--count", "overnight/warm..overnight/h") == "0"
    assert not night.hook_marker.exists()
    assert git(night.task, "status", "--porcelain") == ""


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_hostile_program_gets_the_right_verdict(night, case):
    if night.backend not in case.backends:
        pytest.skip(f"only {', '.join(case.backends)} can promise this")
    row = night.row(case.name)
    output = night.output(row.experiment)
    event = night.run_event(row.experiment)
    assert row.status.value == case.expected(night.backend), output[-3000:]
    probes = dict(re.findall(r"^PROBE (.+?): (allowed|refused)", output, re.MULTILINE))
    for name in case.probes_refused:
        assert probes.get(name) == "refused", output[-3000:]
    if case.extra.get("all_probes_refused"):
        assert probes and set(probes.values()) == {"refused"}, probes
    for text in case.output_has:
        assert text in output, output[-3000:]
    for text in case.output_lacks:
        assert text not in output
    if case.train_status:
        assert event is not None and event["train_status"] == case.train_status
    if case.note_has:
        assert event is not None and case.note_has in event["note"], event
    if "metric" in case.extra:
        assert row.metric == case.extra["metric"]
    if row.status.value == "timeout":  # killed on time, even while flooding its output
        assert row.seconds < 3 + 4
        assert len(output.encode()) < 3 * 64 * 1024
    if case.name == "children outlive it" and night.backend == "local":
        child = int(output.split("CHILD")[1].split()[0])
        with pytest.raises(ProcessLookupError):
            os.kill(child, 0)
    if case.name == "network":
        assert float(output.split("CONNECT SECONDS")[1].split()[0]) < 1.0


def test_the_edit_tool_reaches_no_other_file(night):
    row = night.row("asks the edit tool for another file")
    transcript = json.loads(
        (
            night.task / ".overnight/h/experiments" / f"{row.experiment:04d}" / "transcript.json"
        ).read_text()
    )
    outputs = [call["output"] for call in transcript["calls"]]
    assert all(call["is_error"] for call in transcript["calls"])
    assert "path" in outputs[0] and "file" in outputs[1] and "\\x00 at line 1" in outputs[2]
    ours = night.row("writes ../ paths as content")
    ref = f"refs/overnight/h/discarded/{ours.experiment}"
    assert git(night.task, "diff-tree", "--no-commit-id", "--name-only", "-r", ref) == "train.py"
