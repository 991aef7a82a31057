"""A train.py that nests folders thousands deep in its output, its home or its temp folder: the
experiment is refused, the night goes on, and nothing of it is left, under both sandboxes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import nest_folders, results, run_cli, write_script
from test_night import replace_value, value_task

from harness.seams import Verdict
from sandbox import tree

DEEP = """import os, tempfile
VALUE = 1.0
for top in (os.environ["OVERNIGHT_OUTPUT_DIR"], os.environ["HOME"], tempfile.gettempdir()):
    try:
        os.chdir(top)
        for _ in range(3000):
            os.mkdir("d")
            os.chdir("d")
    except OSError:
        pass
os.chdir(os.environ["OVERNIGHT_OUTPUT_DIR"])
with open("value.txt", "w") as handle:
    handle.write(str(VALUE))
"""


@pytest.mark.parametrize("backend", ["docker", "local"])
def test_folders_3000_deep_are_refused_and_the_night_goes_on(backend, tmp_path, capsys):
    task = value_task(tmp_path)
    script = write_script(
        tmp_path / "s.jsonl",
        [
            {"description": "deep", "calls": [{"command": "write", "content": DEEP}]},
            {"description": "to 2", "calls": [replace_value("VALUE = 2.0")]},
        ],
    )
    code, out = run_cli(
        "run", str(task), "--tag", "d", "--sandbox", backend,
        "--provider", "replay", "--script", str(script), capsys=capsys,
    )  # fmt: skip
    assert code == 0, out
    rows = results(task, "d")
    assert rows[1].status is Verdict.INVALID
    assert rows[2].status is Verdict.KEEP and rows[2].metric == 2.0
    scratch = task / ".overnight/d/scratch"
    assert not scratch.exists() or not any(scratch.iterdir())


@pytest.mark.engine_free
def test_walk_stops_at_its_depth_and_remove_takes_any_depth(tmp_path):
    top = tmp_path / "top"
    top.mkdir()
    nest_folders(top, 3000)
    (top / "d" / "file").write_text("x")
    walked = list(tree.walk(top, max_depth=5))
    assert len(walked) == 6 and "file" in walked[1][2]
    os.chmod(top / "d", 0o500)
    tree.remove(top)
    assert not os.path.lexists(top)
    tree.remove(Path(tmp_path / "gone"))  # quietly
