"""The morning report: report.html in a real browser, report.md, progress.png, and the night's part."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from browser import find_browser, visit
from conftest import committed_repo, results, run_cli, write_script, write_task

from harness.report import write_report
from harness.report_plot import KEPT_COLOUR

PREPARE = """
import os

METRIC = "loss"
DIRECTION = "minimize"
TIME_BUDGET = 5


def evaluate(output_dir):
    with open(os.path.join(output_dir, "value.txt")) as handle:
        return {"loss": float(handle.read())}
"""

TRAIN = """import os
import time

VALUE = 5.0
PAUSE = 0.0

time.sleep(PAUSE)
with open(os.path.join(os.environ["OVERNIGHT_OUTPUT_DIR"], "value.txt"), "w") as handle:
    handle.write(str(VALUE))
"""

HOSTILE = "<script>alert(1)</script> \x1b[31mred\x1b[0m \x1b]8;;http://evil.example/\x07link\x1b]8;;\x07 \u202egnp.exe"


def value_task(tmp_path: Path) -> Path:
    files = {"program.md": "Make loss small.\n", "prepare.py": PREPARE, "train.py": TRAIN}
    return committed_repo(write_task(tmp_path / "task", files))


def edit(old: str, new: str) -> dict:
    return {"command": "str_replace", "old_str": old, "new_str": new}


NIGHT = [
    {"description": "lower VALUE to 4", "calls": [edit("VALUE = 5.0", "VALUE = 4.0")]},
    {"description": "crash on purpose", "calls": [edit("VALUE = 4.0", "VALUE = 1 / 0")]},
    {
        "description": f"halve it {HOSTILE}",
        "calls": [edit("VALUE = 4.0", "VALUE = 2.0  # <img src=http://evil.example/x.png> ```")],
    },
    {"description": "a worse value", "calls": [edit("VALUE = 2.0", "VALUE = 3.5")]},
    {"description": "change nothing", "calls": []},
]


@pytest.fixture(scope="module")
def chromium():
    """The machine's Chromium. CI must have it (.ci/run installs it); elsewhere it may be missing."""
    path = find_browser()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("CI has no chromium on PATH: .ci/run must `apt-get install -y chromium`")
        pytest.skip("no chromium on PATH (apt-get install -y chromium); CI never skips this")
    return path


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """One real night (Docker, git, the replay agent) with keeps, a crash, a discard and a skip."""
    import docker

    docker.from_env().ping()
    tmp_path = tmp_path_factory.mktemp("night")
    task = value_task(tmp_path)
    script = write_script(tmp_path / "night.jsonl", NIGHT)
    code = run_cli(
        *("run", str(task), "--tag", "t", "--provider", "replay", "--script", str(script)),
        "--report-every",
        "2",
    )[0]
    assert code == 0
    return task, task / ".overnight" / "t"


def test_the_night_leaves_report_html_md_and_png_in_its_folder(night):
    task, folder = night
    statuses = [r.status.value for r in results(task, "t")]
    assert statuses == ["keep", "keep", "crash", "keep", "discard", "skipped"]
    for name in ("report.html", "report.md", "progress.png"):
        assert (folder / name).stat().st_size > 1000, name
    assert (folder / "progress.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (folder / "report.md").read_text()
    assert "5 → 2" in md and "+60.00%" in md and "5 run, 2 kept (40%)" in md
    assert "lower VALUE to 4" in md and "![progress" in md and "(progress.png)" in md
    # Links are relative to the run folder and point at files that exist.
    for link in ("experiments/0001/diff.patch", "experiments/0003/diff.patch", "results.tsv"):
        assert f"({link})" in md and (folder / link).exists()
    assert "**crash**: 1" in md and "ZeroDivisionError" in md
    assert "**skipped**: 1" in md and "train.py unchanged" in md
    # The evaluator's own output (for the human only) is linked where there is one.
    html = (folder / "report.html").read_text()
    assert 'href="experiments/0001/evaluate.txt"' in html
    assert (folder / "experiments/0001/evaluate.txt").exists()
    assert 'href="experiments/0002/evaluate.txt"' not in html  # a crash is never evaluated


def test_report_html_opens_from_disk_with_no_request_no_error_and_everything_visible(
    night, chromium
):
    from PIL import Image

    _, folder = night
    page = (folder / "report.html").resolve()
    probe = """JSON.stringify({
      headline: document.getElementById('headline').innerText,
      kept: [...document.querySelectorAll('tr.kept-row')].map(r => r.innerText),
      plot: (() => { const i = document.getElementById('progress');
                     const r = i.getBoundingClientRect();
                     return {complete: i.complete, width: i.naturalWidth, height: i.naturalHeight,
                             box: [r.left, r.top, r.width, r.height]}; })(),
      headBox: (() => { const r = document.getElementById('headline').getBoundingClientRect();
                        return [r.left, r.top, r.width, r.height]; })(),
      scripts: document.scripts.length,
    })"""
    seen = visit(page.as_uri(), probe)
    assert seen.console == [] and seen.exceptions == []
    assert [u for u in seen.requests if not u.startswith("data:")] == [page.as_uri()]
    found = json.loads(seen.probe)
    assert "loss" in found["headline"] and "5 → 2" in found["headline"]
    assert "5 run, 2 kept" in found["headline"]
    assert len(found["kept"]) == 2
    assert "lower VALUE to 4" in found["kept"][0] and "halve it <script>" in found["kept"][1]
    assert found["scripts"] == 0  # the agent's <script> is text, not a script
    assert found["plot"]["complete"] and (found["plot"]["width"], found["plot"]["height"]) == (
        1600,
        900,
    )
    assert (
        "\x1b" not in seen.dom and "\u202e" not in seen.dom and "evil.example/\x07" not in seen.dom
    )
    assert '<img src="http://evil.example' not in seen.dom

    shot = Image.open(io.BytesIO(seen.screenshot)).convert("RGB")
    assert len(shot.getcolors(maxcolors=1 << 20) or []) > 50, "the screenshot is blank"
    left, top, width, height = (int(v) for v in found["plot"]["box"])
    assert top + height <= shot.height, "the plot is not in the first screen"
    plot = shot.crop((left, top, left + width, top + height))
    kept = tuple(int(KEPT_COLOUR[i : i + 2], 16) for i in (1, 3, 5))
    greens = sum(
        count
        for count, rgb in plot.getcolors(maxcolors=1 << 20) or []
        if all(abs(a - b) < 40 for a, b in zip(rgb, kept, strict=True))
    )
    assert greens > 100, "the kept points and the running best are not on screen"
    hl, ht, hw, hh = (int(v) for v in found["headBox"])
    headline = shot.crop((hl, ht, hl + hw, ht + hh)).convert("L")
    assert min(headline.tobytes()) < 80, "the headline has no visible text"


def test_untrusted_text_is_escaped_and_stripped_of_terminal_controls(night):
    _, folder = night
    html = (folder / "report.html").read_text()
    md = (folder / "report.md").read_text()
    for text in (html, md):
        assert "\x1b" not in text and "\u202e" not in text
    assert "<script>" not in html and "<img src=http://evil" not in html
    # In Markdown, only code blocks (shown literally) may hold the agent's raw text.
    outside_code = re.sub(r"(?ms)^(`{3,})[^\n]*\n.*?^\1$", "", md)
    assert "<script>" not in outside_code and "<img" not in outside_code
    # Control characters reach the page as visible escapes (made so where the text came in),
    # never as the characters themselves.
    shown = r"&lt;script&gt;alert(1)&lt;/script&gt; \x1b[31mred\x1b[0m"
    assert shown in html and r"\u202egnp.exe" in html
    assert "&lt;img src=http://evil.example/x.png&gt;" in html  # in the kept diff
    assert r"halve it &lt;script&gt;alert(1)&lt;/script&gt; \\x1b\[31mred" in md
    # The diff's ``` cannot close the Markdown code block around it.
    assert "````diff" in md


def test_report_every_rewrites_the_report_while_the_night_runs(tmp_path):
    task = value_task(tmp_path)
    slow = [
        {"description": f"value {v}", "calls": [edit(f"VALUE = {v + 1}.0", f"VALUE = {v}.0")]}
        for v in (4, 3, 2)
    ]
    slow[0]["calls"].append(edit("PAUSE = 0.0", "PAUSE = 2.0"))
    script = write_script(tmp_path / "slow.jsonl", slow)
    command = [sys.executable, "-m", "harness.cli", "run", str(task), "--tag", "live"]
    command += ["--provider", "replay", "--script", str(script), "--report-every", "1"]
    night = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    md = task / ".overnight/live/report.md"
    seen, deadline = set(), time.monotonic() + 180
    while night.poll() is None and time.monotonic() < deadline:
        if md.exists():
            line = next(x for x in md.read_text().splitlines() if "**experiments**" in x)
            seen.add(line)
        time.sleep(0.05)
    out = night.communicate(timeout=60)[0]
    assert night.returncode == 0, out
    assert len(seen) >= 2, f"the report was not refreshed during the night: {seen}"
    assert "3 run, 3 kept" in md.read_text()
    assert f"report: {task / '.overnight/live/report.html'}" in out


def test_a_report_that_cannot_be_written_never_fails_the_night(tmp_path, capsys):
    task = value_task(tmp_path)
    (task / ".overnight/broken").mkdir(parents=True)
    (task / ".overnight/broken/report.html").mkdir()  # a folder where the file should go
    script = write_script(tmp_path / "s.jsonl", NIGHT[:1])
    code, out = run_cli(
        *("run", str(task), "--tag", "broken", "--provider", "replay", "--script", str(script)),
        capsys=capsys,
    )
    assert code == 0, out
    assert "report: could not be written (IsADirectoryError" in out
    assert [r.status.value for r in results(task, "broken")] == ["keep", "keep"]
    log = (task / ".overnight/broken/overnight.log").read_text()
    assert "report: could not be written" in log and "Traceback" in log


def test_overnight_report_rewrites_the_files_and_prints_their_paths(night, capsys):
    task, folder = night
    (folder / "report.md").unlink()
    code, out = run_cli("report", str(task), "--tag", "t", capsys=capsys)
    assert code == 0
    assert out.split() == [str(folder / n) for n in ("report.html", "report.md", "progress.png")]
    assert (folder / "report.md").exists()


def test_overnight_report_with_an_unknown_tag_names_the_known_ones(night, capsys):
    task, _ = night
    code, out = run_cli("report", str(task), "--tag", "nope", capsys=capsys)
    assert code == 2
    assert "no run tagged 'nope' (tags here: t)" in out


def test_without_matplotlib_the_report_has_no_plot_and_says_how_to_get_one(night):
    task, folder = night
    block = "import sys; sys.modules['matplotlib'] = None; from harness.cli import main; "
    done = subprocess.run(
        [sys.executable, "-c", block + f"sys.exit(main(['report', {str(task)!r}, '--tag', 't']))"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "matplotlib is not installed" in done.stderr and "pip install" in done.stderr
    html = (folder / "report.html").read_text()
    assert "No plot: matplotlib is not installed" in html and "data:image/png" not in html
    write_report(folder)  # leave the module's folder with its plot for the other tests


def synthetic_night(folder: Path, rows: list[tuple], config=None) -> Path:
    """A run folder as the harness writes one: (status, metric, description[, cost]) per row."""
    from harness.ledger import HEADER, format_row
    from harness.seams import ExperimentRecord, Verdict

    folder.mkdir(parents=True)
    lines = ["\t".join(HEADER) + "\n"]
    for number, (status, metric, description, *cost) in enumerate(rows):
        record = ExperimentRecord(number, f"{number:07x}", metric, Verdict(status), description)
        lines.append(format_row(replace(record, cost_usd=cost[0] if cost else 0.0)))
    (folder / "results.tsv").write_text("".join(lines))
    settings = {"metric": "sharpe", "direction": "maximize", "protected": True}
    (folder / "config.json").write_text(json.dumps({"settings": settings, **(config or {})}))
    return folder


@pytest.mark.engine_free
def test_noise_shows_in_the_headline_only_when_it_was_measured(tmp_path):
    rows = [("keep", 1.0, "baseline"), ("keep", 1.5, "a"), ("discard", 1.2, "b")]
    quiet = synthetic_night(tmp_path / "t" / ".overnight" / "quiet", rows)
    noisy = synthetic_night(tmp_path / "t" / ".overnight" / "noisy", rows, {"noise": {"std": 0.1}})
    write_report(quiet)
    write_report(noisy)
    assert "- **improvement**: +50.00%\n" in (quiet / "report.md").read_text()
    assert "- **improvement**: +50.00%, +5.0 × noise\n" in (noisy / "report.md").read_text()


@pytest.mark.engine_free
def test_a_thousand_experiments_are_reported_well_within_a_few_seconds(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_report", Path(__file__).resolve().parent.parent / "bench" / "report.py"
    )
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    folder = tmp_path / "t" / ".overnight" / "big"
    bench.make_night(folder, 1000)
    write_report(folder)  # matplotlib's import and font cache, once per process
    started = time.perf_counter()
    write_report(folder)
    elapsed = time.perf_counter() - started
    # bench/report.py measures it (about half a second here); the margin is for loaded machines.
    assert elapsed < 5, f"{elapsed:.2f}s for 1,000 experiments"
    assert "1000 run" in (folder / "report.md").read_text()


@pytest.mark.engine_free
def test_a_model_agents_cost_tokens_and_phase_times_come_from_the_events(tmp_path):
    rows = [("keep", 1.0, "baseline"), ("keep", 1.2, "a", 0.1), ("skipped", None, "b", 0.025)]
    folder = synthetic_night(tmp_path / "t" / ".overnight" / "model", rows)
    usage = {"calls": 2, "input_tokens": 1500, "cached_input_tokens": 1000, "output_tokens": 300}
    lines = [
        {"ts": 100.0, "event": "run", "experiment": 0, "train_seconds": 4.0, "eval_seconds": 1.0},
        {"ts": 130.0, "event": "proposal", "experiment": 1, "seconds": 20.0, "usage": usage},
        {"ts": 140.0, "event": "run", "experiment": 1, "train_seconds": 6.0, "eval_seconds": 3.0},
        {"ts": 3700.0, "event": "proposal", "experiment": 2, "seconds": 40.0, "usage": usage},
    ]
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    write_report(folder)
    md = (folder / "report.md").read_text()
    assert "- **cost**: $0.12\n" in md
    assert "- **tokens**: 3,000 in (2,000 cached), 600 out, 4 calls\n" in md
    assert "- **hours**: 1.00\n" in md
    assert "| propose | 2 | 30.00s |" in md and "| train | 2 | 5.00s |" in md
    assert "| evaluate | 2 | 2.00s |" in md
