"""Shared fixtures: the real Docker engine, real git repositories in temp folders, task folders."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.cli import main as overnight_main
from harness.ledger import read_rows
from sandbox.image import DEFAULT_IMAGE

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "tasks" / "quickstart"
LABEL = "org.overnight"


# The layers: modules here (and every test run with the local backend) need no Docker engine,
# so `pytest -m "not docker"` passes on a machine without one; every other test is marked
# `docker`. `slow` marks the longest tests (CI runs them all).
ENGINE_FREE = {
    "test_decision",
    "test_edit_bounds",
    "test_edit_tool",
    "test_enforcer_guard",
    "test_image_recipes",
    "test_layers",
    "test_ledger",
    "test_local_workers",
    "test_metric_choice",
    "test_mutate_agent",
    "test_prompt",
    "test_providers",
    "test_replay_script",
    "test_task_config",
    "test_wheel",
}
SLOW = {
    "test_soak",
    "test_tinygpt",
    "test_crash_safety::test_killed_at_any_step_boundary_a_resumed_night_ends_as_an_uninterrupted_one",
    "test_noise::test_killed_at_any_step_of_baseline_runs_and_remeasures_a_resumed_night_counts_each_once",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.module.__name__ if item.module else ""
        params = getattr(getattr(item, "callspec", None), "params", {})
        backends = {v for v in params.values() if v in ("docker", "local")}
        local = backends == {"local"} or "engine_free" in item.keywords
        if not local and (module not in ENGINE_FREE or "docker" in backends):
            item.add_marker(pytest.mark.docker)
        if module in SLOW or f"{module}::{item.originalname}" in SLOW:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def docker_client():
    import docker

    client = docker.from_env()
    client.ping()
    try:
        client.images.get(DEFAULT_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"{DEFAULT_IMAGE} is not built: run `overnight image build` (see README)")
    return client


@pytest.fixture
def no_leftover_containers(docker_client):
    """Fails the test if it leaves any container that overnight started from this process."""
    yield
    mine = f"{LABEL}.pid={os.getpid()}"
    left = docker_client.containers.list(ignore_removed=True, all=True, filters={"label": [mine]})
    assert left == [], f"containers left behind: {[c.name for c in left]}"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def write_task(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def committed_repo(folder: Path) -> Path:
    """Make `folder` a git repository with everything in it committed, as a user would."""
    git(folder, "init", "-q")
    git(folder, "-c", "user.name=u", "-c", "user.email=u@x", "add", "-A")
    git(folder, "-c", "user.name=u", "-c", "user.email=u@x", "commit", "-qm", "task")
    return folder


def nest_folders(top: Path, levels: int) -> None:
    """A chain of folders named d, `levels` deep under `top`, made relative to a descriptor so
    the whole path may be longer than PATH_MAX (remove it with sandbox.tree.remove: pytest's
    rmtree would recurse that deep and fail)."""
    folder = os.open(top, os.O_RDONLY)
    for _ in range(levels):
        os.mkdir("d", dir_fd=folder)
        inner = os.open("d", os.O_RDONLY, dir_fd=folder)
        os.close(folder)
        folder = inner
    os.close(folder)


def copy_quickstart(tmp_path: Path) -> Path:
    target = tmp_path / "quickstart"
    shutil.copytree(QUICKSTART, target, ignore=shutil.ignore_patterns(".overnight"))
    return target


def run_cli(*args: str, capsys=None) -> tuple[int, str]:
    """Run `overnight ARGS` in this process; returns its exit code and what it printed."""
    code = overnight_main(list(args))
    out = ""
    if capsys is not None:
        captured = capsys.readouterr()
        out = captured.out + captured.err
    return code, out


def results(task: Path, tag: str):
    return read_rows(task / ".overnight" / tag / "results.tsv")


def events(task: Path, tag: str) -> list[dict]:
    path = task / ".overnight" / tag / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_script(path: Path, proposals: list[dict]) -> Path:
    buffer = io.StringIO()
    for proposal in proposals:
        buffer.write(json.dumps(proposal) + "\n")
    path.write_text(buffer.getvalue())
    return path
