"""Images a task can choose, and the command line as a user meets it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO, committed_repo, results, run_cli, write_task

from sandbox.image import DEFAULT_IMAGE, debian_mirror

INLINE_PREPARE = 'METRIC = "score"\nDIRECTION = "maximize"\nTIME_BUDGET = 5\n'


def test_a_task_dockerfile_is_built_once_and_used(
    tmp_path, capsys, docker_client, no_leftover_containers
):
    train = "print('score:', open('/etc/overnight-marker').read().strip())\n"
    task = committed_repo(
        write_task(
            tmp_path / "df",
            {
                "program.md": "x",
                "prepare.py": INLINE_PREPARE,
                "train.py": train,
                # The label makes this Dockerfile new to the engine: the first run must build it.
                "Dockerfile": f"FROM {DEFAULT_IMAGE}\nLABEL test={time.time_ns()}\n"
                "RUN echo 42 > /etc/overnight-marker\n",
            },
        )
    )
    code, out = run_cli("run", str(task), "--tag", "a", "--max-experiments", "0", capsys=capsys)
    assert code == 0, out
    assert "building" in out and "Dockerfile" in out
    assert results(task, "a")[0].metric == 42.0
    code, out = run_cli("run", str(task), "--tag", "b", "--max-experiments", "0", capsys=capsys)
    assert code == 0, out
    assert "building" not in out  # cached by the Dockerfile's hash
    built = json.loads((task / ".overnight/b/config.json").read_text())["image"]
    assert built.startswith("overnight/task:")
    docker_client.images.remove(built)


def test_an_image_that_is_not_on_the_machine_stops_before_the_first_experiment(
    tmp_path, capsys, docker_client
):
    task = committed_repo(
        write_task(
            tmp_path / "img",
            {
                "program.md": "x",
                "prepare.py": INLINE_PREPARE,
                "train.py": "print('score: 1')\n",
                "overnight.toml": '[sandbox]\nimage = "python:3.12-slim-not-here"\n',
            },
        )
    )
    code, out = run_cli("run", str(task), "--tag", "x", capsys=capsys)
    assert code == 2
    assert "overnight.toml: image 'python:3.12-slim-not-here' is not on this machine" in out
    assert not (task / ".overnight").exists()
    assert not docker_client.images.list(name="python")


def test_help_is_instant_because_heavy_modules_are_not_imported():
    code = (
        "import sys\n"
        "from harness.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as exit:\n    code = exit.code\n"
        "heavy = [m for m in ('docker', 'git', 'pydantic', 'requests', 'anthropic', 'openai', 'litellm', 'tenacity') if m in sys.modules]\n"
        "print('exit', code, 'heavy', heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO
    ).stdout
    assert "exit 0 heavy []" in out
    assert "overnight" in out and "run" in out and "status" in out


def test_the_installed_command_runs_status_on_a_folder_without_runs(tmp_path):
    task = write_task(
        tmp_path / "fresh", {"program.md": "x", "prepare.py": INLINE_PREPARE, "train.py": "pass\n"}
    )
    command = Path(sys.executable).parent / "overnight"
    done = subprocess.run([str(command), "status", str(task)], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0  # one line
    assert "no runs yet" in done.stderr and "overnight run" in done.stderr


def test_replay_without_a_script_is_a_one_line_error(tmp_path, capsys):
    task = write_task(
        tmp_path / "t", {"program.md": "x", "prepare.py": INLINE_PREPARE, "train.py": "pass\n"}
    )
    code, out = run_cli("run", str(task), "--provider", "replay", capsys=capsys)
    assert code == 2
    assert "--provider replay needs --script FILE" in out


def test_the_image_mirror_is_read_from_apt_sources(tmp_path):
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
    )
    assert debian_mirror(apt) == "http://mirror.example/debian"
    (apt / "sources.list.d" / "debian.sources").unlink()
    (apt / "sources.list").write_text(
        "deb [arch=amd64] http://other.example/debian bookworm main\n"
    )
    assert debian_mirror(apt) == "http://other.example/debian"
