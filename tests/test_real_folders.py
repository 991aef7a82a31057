"""Folders in the layouts other people write, run unchanged through the real loop on the real engine.

karpathy's shape (nothing declared, a `---` summary block, data under ~/.cache downloaded by
setup, TIME_BUDGET imported by train.py), data in `data/` next to prepare.py, an `evaluate`
that train.py calls itself. Downloads come from an HTTP server this module runs in a container
of its own on the engine's default bridge: no traffic leaves the containers the tests start.
"""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest
from conftest import REPO, committed_repo, events, git, results, run_cli, write_script, write_task

from harness.seams import Verdict
from sandbox.image import DEFAULT_IMAGE

SHARD = "\n".join(f"{x / 10:.1f}" for x in range(40)) + "\n"


@pytest.fixture(scope="module")
def data_server(docker_client, tmp_path_factory):
    """A web server with two files, in a container on the default bridge; yields its base URL."""
    served = tmp_path_factory.mktemp("served")
    (served / "shard_00000.txt").write_text(SHARD)
    (served / "kernel.txt").write_text("fast-kernel-v2\n")
    served.chmod(0o755)
    for child in served.iterdir():
        child.chmod(0o644)
    container = docker_client.containers.run(
        DEFAULT_IMAGE,
        ["python3", "-u", "-m", "http.server", "8000", "--directory", "/srv"],
        volumes={str(served): {"bind": "/srv", "mode": "ro"}},
        network="bridge",
        user="65534:65534",
        detach=True,
        labels={"org.overnight.test": uuid.uuid4().hex},
    )
    try:
        deadline = time.monotonic() + 30
        while b"Serving HTTP" not in container.logs() and time.monotonic() < deadline:
            time.sleep(0.2)
        container.reload()
        address = container.attrs["NetworkSettings"]["IPAddress"]
        yield f"http://{address}:8000", container
    finally:
        container.remove(force=True)


def requests_seen(container) -> list[str]:
    return [line for line in container.logs().decode().splitlines() if '"GET ' in line]


KARPATHY_PROGRAM = """# tinyproj

An experiment in letting the model do its own research.

Read `prepare.py` (fixed: data, tokenizer, evaluation; do not modify) and `train.py` (the file
you modify). Data lives in `~/.cache/tinyproj/`; if it is missing, tell the human to run
`python prepare.py`.

**The goal is simple: get the lowest val_loss.** The time budget is fixed, so do not worry
about training time. Memory is a soft constraint.

When a run finishes it prints a summary:

```
---
val_loss:         0.123456
training_seconds: 1.0
num_steps:        40
```

If val_loss improved (lower), keep the commit; if it is equal or worse, reset.
"""

KARPATHY_PREPARE = '''"""One-time data preparation: downloads a data shard and builds a tokenizer.

Data and tokenizer are stored in ~/.cache/tinyproj/.
"""

import argparse
import json
import os
import urllib.request

TIME_BUDGET = 2  # training time budget in seconds

CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "tinyproj")
DATA_DIR = os.path.join(CACHE_DIR, "data")
TOKENIZER_DIR = os.path.join(CACHE_DIR, "tokenizer")
BASE_URL = "{base_url}"


def download(index):
    os.makedirs(DATA_DIR, exist_ok=True)
    name = f"shard_{{index:05d}}.txt"
    with urllib.request.urlopen(f"{{BASE_URL}}/{{name}}", timeout=10) as response:
        data = response.read()
    with open(os.path.join(DATA_DIR, name), "wb") as handle:
        handle.write(data)
    print(f"  Downloaded {{name}}")


def load_values():
    with open(os.path.join(DATA_DIR, "shard_00000.txt")) as handle:
        return [float(line) for line in handle if line.strip()]


def vocab():
    with open(os.path.join(TOKENIZER_DIR, "vocab.json")) as handle:
        return json.load(handle)


def evaluate_loss(prediction, values):
    """The fixed metric: mean squared error of a constant prediction."""
    return sum((v - prediction) ** 2 for v in values) / len(values)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--num-shards", type=int, default=1)
    args = parser.parse_args()
    for index in range(args.num_shards):
        download(index)
    os.makedirs(TOKENIZER_DIR, exist_ok=True)
    with open(os.path.join(TOKENIZER_DIR, "vocab.json"), "w") as handle:
        json.dump({{"tokens": 40}}, handle)
    print(f"Data ready at {{CACHE_DIR}}")
'''

KARPATHY_TRAIN = '''"""Fit a constant to the data. Usage: python train.py"""

import os
import time

from prepare import TIME_BUDGET, evaluate_loss, load_values, vocab

GUESS = 1.0
STEPS = 40

t_start = time.time()
values = load_values()
assert vocab()["tokens"] == 40
os.makedirs(os.path.expanduser("~/.cache/torch_like"), exist_ok=True)  # its own cache
with open("run_notes.txt", "w") as handle:  # a file next to itself, in the working folder
    handle.write("started\\n")
for step in range(STEPS):
    print(f"\\rstep {{step:05d}} | loss: {{evaluate_loss(GUESS, values):.6f}}    ", end="", flush=True)
print()
try:
    import urllib.request

    urllib.request.urlopen("{base_url}/kernel.txt", timeout=3)
    print("network: reachable")
except OSError as err:
    print(f"network: unreachable ({{type(err).__name__}})")
val_loss = evaluate_loss(GUESS, values)
print("---")
print(f"val_loss:         {{val_loss:.6f}}")
print(f"training_seconds: {{time.time() - t_start:.1f}}")
print(f"num_steps:        {{STEPS}}")
print(f"time_budget:      {{TIME_BUDGET}}")
'''


def karpathy_folder(tmp_path, base_url, **extra):
    files = {
        "program.md": KARPATHY_PROGRAM,
        "prepare.py": KARPATHY_PREPARE.format(base_url=base_url),
        "train.py": KARPATHY_TRAIN.format(base_url=base_url),
        **extra,
    }
    return committed_repo(write_task(tmp_path / "tinyproj", files))


def better_guess(tmp_path):
    return write_script(
        tmp_path / "better.jsonl",
        [
            {
                "description": "guess the mean",
                "calls": [
                    {"command": "str_replace", "old_str": "GUESS = 1.0", "new_str": "GUESS = 1.95"}
                ],
            }
        ],
    )


def test_karpathy_shaped_folder_runs_unchanged_to_a_keep(
    tmp_path, capsys, data_server, no_leftover_containers
):
    base_url, server = data_server
    task = karpathy_folder(tmp_path, base_url)
    script = better_guess(tmp_path)

    code, out = run_cli(
        "run",
        str(task),
        "--tag",
        "k",
        "--provider",
        "replay",
        "--script",
        str(script),
        capsys=capsys,
    )

    assert code == 0, out
    assert (
        'metric: val_loss (minimize): val_loss is the one program.md names, to minimize: "The goal is simple: get the lowest val_loss"'
        in out
    )
    assert "scoring: inline (UNPROTECTED), because prepare.py has no evaluate(output_dir)" in out
    rows = results(task, "k")
    assert [(r.description, r.status) for r in rows] == [
        ("baseline", Verdict.KEEP),
        ("guess the mean", Verdict.KEEP),
    ]
    assert rows[1].metric < rows[0].metric
    # Setup downloaded the shard over the bridge; training had no network.
    assert any("shard_00000.txt" in line for line in requests_seen(server))
    baseline_output = (task / ".overnight/k/experiments/0000/output.txt").read_text()
    assert "network: unreachable" in baseline_output
    assert "time_budget:      2" in baseline_output
    config = json.loads((task / ".overnight/k/config.json").read_text())["settings"]
    assert (config["metric"], config["direction"]) == ("val_loss", "minimize")
    assert "program.md" in config["metric_source"]
    assert config["timeout"] == 64  # 2 x prepare.py's TIME_BUDGET + 60

    # The tag resumes without any flag: the metric it measured comes from its config.json.
    code, out = run_cli("run", str(task), "--tag", "k", "--max-experiments", "2", capsys=capsys)
    assert code == 0, out
    assert "metric: val_loss (minimize), from this tag's config.json" in out
    assert len(results(task, "k")) == 3


def test_training_gets_the_network_only_when_the_task_opts_in(
    tmp_path, capsys, data_server, no_leftover_containers
):
    base_url, server = data_server
    task = karpathy_folder(
        tmp_path, base_url, **{"overnight.toml": "[sandbox]\ntrain_network = true\n"}
    )

    code, out = run_cli("validate", str(task), capsys=capsys)
    assert "network: WEAKER ISOLATION: training on 'bridge'" in out
    code, out = run_cli("run", str(task), "--tag", "n", "--max-experiments", "0", capsys=capsys)

    assert code == 0, out
    assert "network: reachable" in (task / ".overnight/n/experiments/0000/output.txt").read_text()
    assert any("kernel.txt" in line for line in requests_seen(server))


def test_validate_gives_an_account_of_a_karpathy_shaped_folder(tmp_path, capsys, data_server):
    base_url, _ = data_server
    task = karpathy_folder(tmp_path, base_url)
    (task / "overnight.toml").write_text("time_budget = 30\n")

    code, out = run_cli("validate", str(task), capsys=capsys)

    assert code == 0, out
    assert "metric: val_loss (minimize), inferred: val_loss is the one program.md names" in out
    assert "scoring: UNPROTECTED (inline), because prepare.py has no evaluate(output_dir)" in out
    assert "train.py imports TIME_BUDGET = 2 from prepare.py, so time_budget = 30" in out
    assert "cannot reach it; the hard timeout follows 2s" in out
    assert "on network 'bridge' (prepare.py imports urllib.request)" in out
    assert "it writes under ~ (HOME)" in out


DATA_PROGRAM = """# Tiny classifier

`prepare.py` writes `data/train.csv` and `data/test.csv` next to itself. Improve `train.py`.
Our target: maximize accuracy on data/test.csv. Print the summary as `accuracy: <value>`.
"""

DATA_PREPARE = """import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")


def write(name, rows, seed):
    rng = random.Random(seed)
    with open(os.path.join(DATA, name), "w") as handle:
        for _ in range(rows):
            x = rng.uniform(-1, 1)
            handle.write(f"{x:.4f},{int(x > 0.3)}\\n")


if __name__ == "__main__":
    os.makedirs(DATA, exist_ok=True)
    with open(os.path.join(HERE, "labels.txt")) as handle:
        assert handle.read().split() == ["negative", "positive"]
    write("train.csv", 200, 1)
    write("test.csv", 200, 2)
"""

DATA_TRAIN = """import os

THRESHOLD = 0.0

here = os.path.dirname(os.path.abspath(__file__))
rows = [line.split(",") for line in open(os.path.join(here, "data", "test.csv"))]
assert os.path.exists("data/train.csv")  # relative to the working folder, as in a checkout
labels = open(os.path.join(here, "labels.txt")).read().split()
hits = sum((float(x) > THRESHOLD) == (int(y) == 1) for x, y in rows)
print(f"predicting {labels[1]} above {THRESHOLD}")
print(f"accuracy: {hits / len(rows):.4f}")
"""


def test_data_written_next_to_prepare_py_is_there_for_train_py(
    tmp_path, capsys, no_leftover_containers
):
    task = committed_repo(
        write_task(
            tmp_path / "classifier",
            {
                "program.md": DATA_PROGRAM,
                "prepare.py": DATA_PREPARE,
                "train.py": DATA_TRAIN,
                "labels.txt": "negative positive\n",
                ".gitignore": "data/\n.venv/\n",
            },
        )
    )
    # The author's own checkout has stale data and a virtualenv, both ignored by git.
    (task / "data").mkdir()
    (task / "data" / "test.csv").write_text("0.9,0\n")
    (task / ".venv").mkdir()
    (task / ".venv" / "huge.bin").write_bytes(b"x" * 1024)
    script = write_script(
        tmp_path / "s.jsonl",
        [
            {
                "description": "threshold at the boundary",
                "calls": [
                    {
                        "command": "str_replace",
                        "old_str": "THRESHOLD = 0.0",
                        "new_str": "THRESHOLD = 0.3",
                    }
                ],
            }
        ],
    )

    code, out = run_cli(
        "run",
        str(task),
        "--tag",
        "d",
        "--provider",
        "replay",
        "--script",
        str(script),
        capsys=capsys,
    )

    assert code == 0, out
    assert "metric: accuracy (maximize)" in out
    rows = results(task, "d")
    assert [r.status for r in rows] == [Verdict.KEEP, Verdict.KEEP]
    assert rows[1].metric == 1.0 and rows[0].metric < 1.0
    setup = next(p for p in (task / ".overnight/cache").iterdir() if p.name.startswith("setup-"))
    assert not (setup / "task" / ".venv").exists()  # ignored files are not the task's
    assert (task / "data" / "test.csv").read_text() == "0.9,0\n"  # the checkout is untouched


SIGNATURE_PREPARE = '''"""Scores a ranking function on fixed cases."""

CASES = [([3, 1, 2], [1, 2, 3]), ([5, 4], [4, 5]), ([9, 7, 8, 6], [6, 7, 8, 9])]


def evaluate(fn, data=None):
    """The share of cases fn sorts right (higher is better)."""
    cases = data or CASES
    return sum(fn(list(given)) == wanted for given, wanted in cases) / len(cases)
'''

SIGNATURE_TRAIN = """from prepare import evaluate


def rank(values):
    return values[::-1]


print(f"score: {evaluate(rank):.3f}")
"""


def test_an_evaluate_of_another_signature_means_inline_mode(
    tmp_path, capsys, no_leftover_containers
):
    task = committed_repo(
        write_task(
            tmp_path / "ranker",
            {
                "program.md": "Make rank() right: get the highest score.\n",
                "prepare.py": SIGNATURE_PREPARE,
                "train.py": SIGNATURE_TRAIN,
            },
        )
    )
    code, out = run_cli("validate", str(task), capsys=capsys)
    assert "because prepare.py's evaluate(fn, data) is not evaluate(output_dir)" in out
    script = write_script(
        tmp_path / "s.jsonl",
        [
            {
                "description": "sort",
                "calls": [
                    {
                        "command": "str_replace",
                        "old_str": "values[::-1]",
                        "new_str": "sorted(values)",
                    }
                ],
            }
        ],
    )

    code, out = run_cli(
        "run",
        str(task),
        "--tag",
        "s",
        "--provider",
        "replay",
        "--script",
        str(script),
        capsys=capsys,
    )

    assert code == 0, out
    rows = results(task, "s")
    assert [(r.status, r.metric) for r in rows] == [(Verdict.KEEP, 0.333), (Verdict.KEEP, 1.0)]


def test_a_crashing_baseline_gets_its_row_and_shows_its_output(
    tmp_path, capsys, no_leftover_containers
):
    task = committed_repo(
        write_task(
            tmp_path / "broken",
            {
                "program.md": "Lower loss.\n",
                "prepare.py": "TIME_BUDGET = 5\n",
                "train.py": "import json\nraise ValueError('shapes (3,) and (4,) do not match')\n",
            },
        )
    )

    code, out = run_cli("run", str(task), "--tag", "b", capsys=capsys)

    assert code == 2
    assert "baseline gave no valid metric (crash, exit 1)" in out
    assert "ValueError: shapes (3,) and (4,) do not match" in out  # the tail of its output
    assert [(r.experiment, r.status) for r in results(task, "b")] == [(0, Verdict.CRASH)]
    code, out = run_cli("status", str(task), "--tag", "b", capsys=capsys)
    assert "counts: crash 1" in out

    # Fixed and committed, the same tag starts again from the fixed train.py.
    (task / "train.py").write_text("print('loss: 0.5')\n")
    git(task, "-c", "user.name=u", "-c", "user.email=u@x", "commit", "-qam", "fix")
    code, out = run_cli("run", str(task), "--tag", "b", "--max-experiments", "0", capsys=capsys)
    assert code == 0, out
    assert "starts again from your HEAD" in out
    assert [r.status for r in results(task, "b")] == [Verdict.CRASH, Verdict.KEEP]


def test_a_baseline_that_prints_no_metric_says_how_to_print_one(
    tmp_path, capsys, no_leftover_containers
):
    task = committed_repo(
        write_task(
            tmp_path / "silent",
            {"program.md": "x", "prepare.py": "X = 1\n", "train.py": "print('done')\n"},
        )
    )

    code, out = run_cli("run", str(task), "--tag", "q", capsys=capsys)

    assert code == 2
    assert "has no `name: number` lines" in out and 'print(f"val_loss: {loss:.6f}")' in out
    assert [r.status for r in results(task, "q")] == [Verdict.INVALID]
    assert "setup: `python prepare.py` wrote no file" in out


def test_a_declared_metric_that_train_py_does_not_print_lists_what_it_printed(
    tmp_path, capsys, no_leftover_containers
):
    task = committed_repo(
        write_task(
            tmp_path / "named",
            {
                "program.md": "x",
                "prepare.py": 'METRIC = "val_loss"\nDIRECTION = "minimize"\n',
                "train.py": "print('---')\nprint('val_bpb: 1.5')\nprint('steps: 10')\n",
            },
        )
    )

    code, out = run_cli("run", str(task), "--tag", "m", capsys=capsys)

    assert code == 2
    assert "no `val_loss: <number>` line (the `name: number` lines printed: val_bpb, steps)" in out
    decisions = [e for e in events(task, "m") if e["event"] == "decision"]
    assert decisions[0]["status"] == "invalid"


def test_init_writes_what_it_found_into_overnight_toml_and_keeps_what_was_there(tmp_path, capsys):
    task = karpathy_folder(
        tmp_path, "http://unused.invalid", **{"overnight.toml": '[sandbox]\nmemory = "2g"\n'}
    )

    code, out = run_cli("init", str(task), capsys=capsys)

    assert code == 0, out
    text = (task / "overnight.toml").read_text()
    assert 'metric = "val_loss"  # inferred: val_loss is the one program.md names' in text
    assert 'direction = "minimize"' in text and 'mode = "inline"' in text
    assert "timeout = 64" in text
    assert text.rstrip().endswith('[sandbox]\nmemory = "2g"')
    code, out = run_cli("validate", str(task), capsys=capsys)
    assert "metric: val_loss (minimize), from overnight.toml" in out
    assert "memory 2g" in out


def test_validate_piped_into_head_ends_without_a_traceback(tmp_path):
    import os
    import subprocess
    import sys

    task = karpathy_folder(tmp_path, "http://unused.invalid")
    for _ in range(3):  # unbuffered, so head is gone while validate still has lines to print
        done = subprocess.run(
            f"{sys.executable} -m harness.cli validate {task} | head -1",
            shell=True,
            capture_output=True,
            text=True,
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert done.stdout.startswith("task: ")
        assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr


SYNCED_PROGRAM = """# Churn threshold

The raw data is synced by hand into `data/raw/` (too large for git: `rclone sync ...`).
`prepare.py` builds `.cache/features.json` from it. Improve `train.py`; the goal is to
maximize accuracy.
"""

SYNCED_PREPARE = """import json
from pathlib import Path

DATA_ROOT = Path(__file__).parent / "data"
CACHE = Path(__file__).parent / ".cache"


def load_features():
    return json.loads((CACHE / "features.json").read_text())


if __name__ == "__main__":
    rows = []
    for path in sorted((DATA_ROOT / "raw").glob("*.csv")):
        rows += [line.split(",") for line in path.read_text().split()]
    CACHE.mkdir(exist_ok=True)
    (CACHE / "features.json").write_text(json.dumps([[float(x), int(y)] for x, y in rows]))
    print(f"{len(rows)} rows")
"""

SYNCED_TRAIN = """import os

from prepare import load_features

THRESHOLD = 0.1

rows = load_features()
try:
    open("data/raw/mine.csv", "w").close()
    writable = True
except OSError:
    writable = False
print(f"data writable: {writable}, env file visible: {os.path.exists('.env')}")
print(f"raw files: {sorted(os.listdir('data/raw'))}")
hits = sum((x > THRESHOLD) == (y == 1) for x, y in rows)
print("---")
print(f"accuracy: {hits / len(rows):.4f}")
"""


def synced_folder(tmp_path):
    task = committed_repo(
        write_task(
            tmp_path / "churn",
            {
                "program.md": SYNCED_PROGRAM,
                "prepare.py": SYNCED_PREPARE,
                "train.py": SYNCED_TRAIN,
                ".gitignore": "data/\n.cache/\n.env\n",
            },
        )
    )
    # What the author's checkout has beside the commit: the synced data, a local secret.
    (task / "data" / "raw").mkdir(parents=True)
    (task / "data" / "raw" / "2024.csv").write_text("0.1,0\n0.4,1\n0.35,1\n0.2,0\n0.3,1\n")
    (task / ".env").write_text("API_KEY=never-in-a-container\n")
    return task


@pytest.mark.parametrize(
    ("copy_limit", "backend"),
    [(None, "docker"), (0, "docker"), (0, "local")],
    ids=["copied", "mounted-read-only", "mounted-local-sandbox"],
)
def test_data_the_author_synced_by_hand_and_git_ignores_is_there_for_setup_and_training(
    tmp_path, capsys, no_leftover_containers, monkeypatch, copy_limit, backend
):
    import harness.host_data

    if copy_limit is not None:  # as if the data were larger than what is copied
        monkeypatch.setattr(harness.host_data, "COPY_LIMIT", copy_limit)
    task = synced_folder(tmp_path)

    code, out = run_cli("validate", str(task), capsys=capsys)
    assert code == 0, out
    said = "data: data/ is ignored by git but prepare.py names it: "
    if copy_limit is None:
        assert said + "setup starts with a copy of it (" in out
    else:
        assert said + "at 31 bytes (over 0 bytes) it is not copied; every container sees it " in out
    assert ".env" not in out and ".cache" not in out
    assert "training sees data/ too" not in out  # inline: no held-out data to warn about

    code, out = run_cli(
        "run",
        str(task),
        "--tag",
        "h",
        "--max-experiments",
        "1",
        "--sandbox",
        backend,
        capsys=capsys,
    )

    assert code == 0, out
    rows = results(task, "h")
    assert rows[0].status is Verdict.KEEP and rows[0].metric == 0.8
    seen = (task / ".overnight/h/experiments/0000/output.txt").read_text()
    assert "data writable: False, env file visible: False" in seen  # training: read-only
    assert "raw files: ['2024.csv']" in seen
    assert sorted(os.listdir(task / "data" / "raw")) == ["2024.csv"]  # the checkout untouched
    setup = next(p for p in (task / ".overnight/cache").iterdir() if p.name.startswith("setup-"))
    assert not (setup / "task" / ".env").exists()
    assert (setup / "task" / ".cache" / "features.json").exists()  # setup wrote next to itself
    if backend == "docker":  # the local sandbox copies what a run wrote back, mounts included
        assert (setup / "task" / "data" / "raw").exists() is (copy_limit is None)


LIBRARY_PREPARE = '''"""Fixed infrastructure: the dataset, the reward, the sandbox. Imported by train.py."""

import subprocess
import urllib.request

URL = "https://example.invalid/problems.jsonl"


def load_problems():
    with urllib.request.urlopen(URL) as response:
        return response.read().decode().splitlines()


def run_in_sandbox(code):
    return subprocess.run(["docker", "run", "--rm", "-i", "python:3.12"], input=code)
'''


def test_a_prepare_py_that_only_defines_functions_is_told_apart(tmp_path, capsys):
    task = committed_repo(
        write_task(
            tmp_path / "library",
            {
                "program.md": "Get the highest reward.\n",
                "prepare.py": LIBRARY_PREPARE,
                "train.py": "from prepare import load_problems\nprint(f'reward: {len(load_problems())}')\n",
            },
        )
    )

    _, out = run_cli("validate", str(task), capsys=capsys)

    assert 'prepare.py has no `if __name__ == "__main__":` block and calls nothing' in out
    assert (
        f"warning: {task / 'prepare.py'}: what it fetches with urllib.request would run in "
        'training, which has no network: download in an `if __name__ == "__main__":` block'
    ) in out
    assert "warning: prepare.py starts Docker itself" in out
    assert "warning: train.py starts Docker" not in out


def test_a_repository_whose_task_folder_is_a_subfolder_is_pointed_to_it(tmp_path, capsys):
    repo = tmp_path / "repo"
    write_task(repo, {"README.md": "Research on order books.\n", "pyproject.toml": ""})
    write_task(
        repo / "experiments" / "orderbook",
        {"program.md": "Lower loss.\n", "prepare.py": "", "train.py": "print('loss: 1')\n"},
    )

    code, out = run_cli("validate", str(repo), capsys=capsys)

    assert code == 2
    assert out.strip() == (
        f"problem: {repo}: missing program.md, train.py, prepare.py; "
        f"{repo / 'experiments' / 'orderbook'} holds all of program.md, train.py, prepare.py: "
        "pass that folder as the task folder"
    )


def test_a_folder_without_prepare_py_is_told_how_small_one_may_be(tmp_path, capsys):
    task = write_task(tmp_path / "t", {"program.md": "x", "train.py": "print('loss: 1')\n"})

    code, out = run_cli("validate", str(task), capsys=capsys)

    assert code == 2
    assert f"problem: {task}: missing prepare.py; add one next to train.py: it holds" in out
    assert "`TIME_BUDGET = 300`" in out and len(out.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("prepare", "train", "budget", "timeout", "note"),
    [
        (
            "TRAIN_BUDGET_SECONDS = 120\n",
            "from prepare import TRAIN_BUDGET_SECONDS\n",
            120,
            300,
            "train.py imports TRAIN_BUDGET_SECONDS = 120 from prepare.py",
        ),
        (
            "TIME_BUDGET_MINUTES = 2\n",
            "import prepare\nstop = prepare.TIME_BUDGET_MINUTES * 60\n",
            120,
            300,
            "train.py imports TIME_BUDGET_MINUTES = 2 (120s) from prepare.py",
        ),
        (
            "",
            "TIME_BUDGET = 900  # seconds\n",
            900,
            1860,
            "train.py sets its own TIME_BUDGET = 900",
        ),
        ("EVAL_TIMEOUT = 5\n", "from prepare import EVAL_TIMEOUT\nMAX_EPOCHS = 3\n", 300, 660, ""),
    ],
    ids=["other-name", "minutes", "its-own", "not-a-budget"],
)
def test_the_time_budget_train_py_really_uses_whatever_its_name(
    tmp_path, capsys, prepare, train, budget, timeout, note
):
    task = committed_repo(
        write_task(
            tmp_path / "t",
            {
                "program.md": "Lower loss.\n",
                "prepare.py": prepare,
                "train.py": train + "print('loss: 1')\n",
            },
        )
    )

    _, out = run_cli("validate", str(task), capsys=capsys)

    assert f"time budget: {budget}s, hard timeout: {timeout}s per training run" in out
    if note:
        assert f"time budget: {note}" in out
    else:
        assert "time budget: train.py" not in out


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (
            "import urllib.request\n"
            "urllib.request.urlopen('http://shards.example.com/shard_0.bin', timeout=5)\n",
            "urllib.error.URLError: <urlopen error [Errno -3] Temporary failure in name "
            "resolution>; a download failed: setup runs on Docker network 'none', so check that "
            "containers there reach that host (or set sandbox.setup_network). Its output ends:",
        ),
        (
            "raise ValueError('expected 25 symbols, found 0 in data/')\n",
            "ValueError: expected 25 symbols, found 0 in data/; fix prepare.py. Its output ends:",
        ),
    ],
    ids=["download", "bug"],
)
def test_a_failed_setup_says_in_its_first_line_what_failed(
    tmp_path, capsys, no_leftover_containers, body, said
):
    task = committed_repo(
        write_task(
            tmp_path / "t",
            {
                "program.md": "Lower loss.\n",
                "prepare.py": f"if __name__ == '__main__':\n    exec({body!r})\n",
                "train.py": "print('loss: 1')\n",
                "overnight.toml": '[sandbox]\nsetup_network = "none"\n',
            },
        )
    )

    code, out = run_cli("run", str(task), "--tag", "s", capsys=capsys)

    assert code == 2
    first = next(line for line in out.splitlines() if line.startswith("overnight: "))
    assert first == (
        f"overnight: {task / 'prepare.py'}: `python prepare.py` ended with crash (exit 1) in "
        f"setup: {said}"
    )


def test_a_summary_printed_by_prepare_py_for_train_py_names_the_metric(tmp_path, capsys):
    prepare = (
        "def _report(auc, acc):\n"
        "    print('---')\n"
        "    print(f'val_auc:      {auc:.6f}')\n"
        "    print(f'val_accuracy: {acc:.6f}')\n\n\n"
        "def evaluate(model, training_seconds):\n"
        "    _report(0.9, 0.8)\n"
        "    print(f'training_seconds: {training_seconds:.1f}')\n"
    )
    task = committed_repo(
        write_task(
            tmp_path / "tabular",
            {
                "program.md": "**The goal: get the highest val_auc.**\n",
                "prepare.py": prepare,
                "train.py": "from prepare import evaluate\n\nevaluate(None, 1.0)\n",
            },
        )
    )

    _, out = run_cli("validate", str(task), capsys=capsys)

    assert "metric: val_auc (maximize), inferred: val_auc is the one program.md names" in out


def test_a_folder_whose_program_md_edits_another_file_is_told_to_rename_it(tmp_path, capsys):
    task = write_task(
        tmp_path / "tsp",
        {
            "program.md": "- `prepare.py` — fixed: do not modify.\n"
            "- `solve.py` — the file you modify. The solver lives here.\n",
            "prepare.py": "TIME_BUDGET = 300\n",
            "solve.py": "print('val_cost: 1.5')\n",
        },
    )

    code, out = run_cli("validate", str(task), capsys=capsys)

    assert code == 2
    assert out.strip() == (
        f"problem: {task}: missing train.py; program.md names solve.py as the file to modify, "
        "and overnight edits only train.py: rename solve.py to train.py (and say so in program.md)"
    )


KAGGLE_PREPARE = """from pathlib import Path

TIME_BUDGET = 300
HARD_TIMEOUT = 600  # the runner kills a solve after this long
DATA_DIR = Path(__file__).resolve().parent / "data"


def load_cities():
    rows = (DATA_DIR / "cities.csv").read_text().split()[1:]
    return [tuple(float(v) for v in row.split(",")[1:]) for row in rows]


if __name__ == "__main__":
    print(f"{len(load_cities())} cities")
"""

KAGGLE_TRAIN = """from prepare import TIME_BUDGET, load_cities

cities = load_cities()
tour = sorted(range(len(cities)), key=lambda i: cities[i][0])
cost = sum(abs(cities[a][0] - cities[b][0]) + abs(cities[a][1] - cities[b][1])
           for a, b in zip(tour, tour[1:]))
print("---")
print(f"val_cost: {cost:.4f}")
"""


@pytest.mark.parametrize("copy_limit", [None, 0], ids=["copied", "mounted-read-only"])
def test_a_downloaded_file_ignored_inside_a_tracked_folder_comes_along(
    tmp_path, capsys, no_leftover_containers, monkeypatch, copy_limit
):
    import harness.host_data

    if copy_limit is not None:
        monkeypatch.setattr(harness.host_data, "COPY_LIMIT", copy_limit)
    task = committed_repo(
        write_task(
            tmp_path / "santa",
            {
                "program.md": "The goal: minimise val_cost.\n",
                "prepare.py": KAGGLE_PREPARE,
                "train.py": KAGGLE_TRAIN,
                ".gitignore": "data/cities.csv\n",
            },
        )
    )
    write_task(task / "data", {"README.md": "Download cities.csv from Kaggle into here.\n"})
    git(task, "-c", "user.name=u", "-c", "user.email=u@x", "add", "data/README.md")
    git(task, "-c", "user.name=u", "-c", "user.email=u@x", "commit", "-qm", "data readme")
    (task / "data" / "cities.csv").write_text("CityId,X,Y\n0,0,0\n1,3,1\n2,1,2\n")

    _, out = run_cli("validate", str(task), capsys=capsys)
    assert "data: data/cities.csv is ignored by git but prepare.py names it: " in out
    assert "time budget: 300s, hard timeout: 600s per training run" in out

    code, out = run_cli("run", str(task), "--tag", "k", "--max-experiments", "0", capsys=capsys)

    assert code == 0, out
    assert [(r.status, r.metric) for r in results(task, "k")] == [(Verdict.KEEP, 6.0)]


def test_a_task_in_a_subfolder_of_its_repository_brings_each_ignored_entry_once(tmp_path):
    from harness.host_data import host_entries

    repo = tmp_path / "research"
    task = write_task(
        repo / "tsp_heuristic",
        {
            "program.md": "x",
            "prepare.py": 'CITIES = "data/cities.csv"\n',
            "train.py": "",
            ".gitignore": "data/cities.csv\n.cache/\n",
        },
    )
    committed_repo(repo)
    write_task(task / "data", {"cities.csv": "CityId,X,Y\n"})
    write_task(task / ".cache", {"tour.npy": "x"})

    assert [(e.name, e.named_by, e.copied) for e in host_entries(task)] == [
        ("data", "prepare.py", True)
    ]
