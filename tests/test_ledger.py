"""The run's records on disk: results.tsv and events.jsonl, through a night and a resume."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import pytest

from harness.ledger import RunDir, format_row, read_rows
from harness.seams import ExperimentRecord, Verdict

HEADER_LINE = "experiment\tcommit\tmetric\tmemory_gb\tstatus\tseconds\tcost_usd\tdescription\n"
COMMIT = "0123456789abcdef0123456789abcdef01234567"

ROWS = [
    ExperimentRecord(0, COMMIT, 0.523, Verdict.KEEP, "baseline", seconds=12.3, memory_gb=0.5),
    ExperimentRecord(1, "fedcba9876543210", 0.61, Verdict.DISCARD, "mutate: EPOCHS 4 -> 5", 11.0),
    ExperimentRecord(2, "abcdef1234567", None, Verdict.CRASH, "raise the width", 3.5, 1.2),
    ExperimentRecord(3, "1111111222", None, Verdict.TIMEOUT, "train for longer", 660.0, 2.0),
    ExperimentRecord(4, "-", None, Verdict.SKIPPED, "no change [train.py unchanged]"),
    ExperimentRecord(5, "2222222", 0.123456, Verdict.KEEP, "lower the learning rate", 9.9, 0.1),
    ExperimentRecord(6, "3333333aaaa", None, Verdict.INVALID, "print nan", 8.0),
    ExperimentRecord(7, "4444444bbbb", -1.5e-07, Verdict.KEEP, "negative metrics work", 1.0),
]


def shortened(row: ExperimentRecord) -> ExperimentRecord:
    return dataclasses.replace(row, commit=row.commit[:7])


def test_create_writes_the_header_and_keeps_the_state_out_of_git(tmp_path) -> None:
    run = RunDir(tmp_path, "night-1")

    run.create()

    assert run.results.read_text() == HEADER_LINE
    assert run.rows() == []
    ignore = tmp_path / ".overnight" / ".gitignore"
    assert "*" in ignore.read_text().splitlines()
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", ".overnight/night-1/results.tsv"], cwd=tmp_path
    )
    assert ignored.returncode == 0


def test_create_again_on_resume_keeps_what_is_there(tmp_path) -> None:
    run = RunDir(tmp_path, "night-1")
    run.create()
    run.record(ROWS[0])

    RunDir(tmp_path, "night-1").create()

    assert run.results.read_text().count("experiment\tcommit") == 1
    assert RunDir(tmp_path, "night-1").rows() == [shortened(ROWS[0])]


def test_a_gitignore_already_in_the_state_folder_is_left_alone(tmp_path) -> None:
    (tmp_path / ".overnight").mkdir()
    (tmp_path / ".overnight" / ".gitignore").write_text("mine\n")

    RunDir(tmp_path, "night-1").create()

    assert (tmp_path / ".overnight" / ".gitignore").read_text() == "mine\n"


def test_recorded_rows_read_back_equal(tmp_path) -> None:
    run = RunDir(tmp_path, "night-1")
    run.create()

    for row in ROWS:
        run.record(row)

    assert RunDir(tmp_path, "night-1").rows() == [shortened(row) for row in ROWS]
    assert read_rows(run.results)[0].commit == "0123456"
    lines = run.results.read_text().splitlines()
    assert len(lines) == 1 + len(ROWS)
    assert lines[1] == "0\t0123456\t0.523\t0.5\tkeep\t12.3\t0.0000\tbaseline"


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("lr\t0.01 -> 0.02", "lr 0.01 -> 0.02"),
        ("first line\nsecond line", "first line second line"),
        ("windows\r\nline\rend", "windows line end"),
        ("  padded \t\n ", "padded"),
        ("a\x0bb\x0cc\u2028d", "a b c d"),
    ],
)
def test_descriptions_with_tabs_and_newlines_stay_on_one_line(
    tmp_path, description, expected
) -> None:
    run = RunDir(tmp_path, "night-1")
    run.create()

    run.record(ExperimentRecord(1, COMMIT, 1.0, Verdict.DISCARD, description))
    run.record(ExperimentRecord(2, COMMIT, 0.5, Verdict.KEEP, "next"))

    assert len(run.results.read_text().split("\n")) == 1 + 2 + 1
    rows = run.rows()
    assert [r.experiment for r in rows] == [1, 2]
    assert rows[0].description == expected


# The last row a crash cut short, at several places.
TORN_ROW = ExperimentRecord(3, COMMIT, 0.75, Verdict.DISCARD, "widen the hidden layer", 10.0)
FULL = format_row(TORN_ROW)
CUTS = {
    "in-the-commit": FULL.index(COMMIT[:7]) + 3,
    "in-the-status": FULL.index("discard") + 4,
    "before-the-description": FULL.index("widen") - 1,
    "in-the-description": FULL.index("hidden"),
    "in-the-seconds": FULL.index("10.0") + 2,
}


@pytest.mark.parametrize("cut", CUTS.values(), ids=CUTS.keys())
def test_a_torn_last_line_is_skipped_and_the_next_row_lands_on_its_own_line(tmp_path, cut) -> None:
    run = RunDir(tmp_path, "night-1")
    run.create()
    run.record(ROWS[0])
    run.record(ROWS[1])
    with open(run.results, "a", encoding="utf-8") as handle:
        handle.write(FULL[:cut])  # the crash: no newline
    assert not run.results.read_text().endswith("\n")

    assert RunDir(tmp_path, "night-1").rows() == [shortened(ROWS[0]), shortened(ROWS[1])]

    # The next night resumes: it opens the run again and records experiment 3 for real.
    resumed = RunDir(tmp_path, "night-1")
    resumed.create()
    resumed.record(TORN_ROW)

    assert resumed.results.read_text().endswith(format_row(TORN_ROW))
    assert resumed.rows() == [shortened(ROWS[0]), shortened(ROWS[1]), shortened(TORN_ROW)]


def test_events_are_one_json_object_a_line(tmp_path) -> None:
    run = RunDir(tmp_path, "night-1")
    run.create()
    awkward = 'tab\there, "quotes", newline\nand \\ backslash, ünïcode'

    run.event("setup", prepare_sha256="ab" * 32)
    run.event("proposal", experiment=1, description=awkward, calls=[{"input": {"command": "view"}}])
    run.event("decision", experiment=1, status="keep", metric=0.5, where=Path("/tmp/x"))

    lines = run.events.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == ""
    entries = [json.loads(line) for line in lines[:-1]]
    assert [e["event"] for e in entries] == ["setup", "proposal", "decision"]
    assert all(isinstance(e["ts"], float) for e in entries)
    assert entries[1]["description"] == awkward
    assert entries[1]["calls"] == [{"input": {"command": "view"}}]
    assert entries[2]["metric"] == 0.5
    assert entries[2]["where"] == "/tmp/x"


def test_a_torn_event_line_does_not_swallow_the_next_event(tmp_path) -> None:
    run = RunDir(tmp_path, "night-1")
    run.create()
    run.event("setup", prepare_sha256="ab")
    with open(run.events, "a", encoding="utf-8") as handle:
        handle.write('{"ts": 1.0, "event": "run", "exper')

    resumed = RunDir(tmp_path, "night-1")
    resumed.create()
    resumed.event("reconciled", head="abc", best="def")

    # The torn event is cut off; every line left is a whole JSON object.
    lines = resumed.events.read_text().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["setup", "reconciled"]


def test_artifacts_go_in_the_experiment_folder(tmp_path) -> None:
    run = RunDir(tmp_path, "night-1")
    run.create()

    run.write_artifact(7, "output.txt", "loss: 0.5\n")

    assert (
        tmp_path / ".overnight" / "night-1" / "experiments" / "0007" / "output.txt"
    ).read_text() == ("loss: 0.5\n")


def test_a_ledger_written_before_the_cost_column_still_reads(tmp_path) -> None:
    path = tmp_path / "results.tsv"
    path.write_text(
        "experiment\tcommit\tmetric\tmemory_gb\tstatus\tseconds\tdescription\n"
        "0\tabcdef1\t1.5\t0.1\tkeep\t2.0\tbaseline\n"
    )
    [row] = read_rows(path)
    assert (row.experiment, row.metric, row.cost_usd, row.description) == (0, 1.5, 0.0, "baseline")
