"""bench/parallel.py's task and arithmetic: the sleeping task validates and runs a real night, and
the pace of a night is read from its events the way the benchmark reads it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from conftest import events, results, run_cli


def load_bench() -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "bench" / "parallel.py"
    spec = importlib.util.spec_from_file_location("bench_parallel", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_sleeping_task_validates_and_its_night_keeps_what_is_closer_to_the_optimum(
    tmp_path, capsys, no_leftover_containers
):
    bench = load_bench()
    task = bench.make_task("sleeping", tmp_path, sleep=0.2)
    assert "SLEEP_SECONDS = 0.2\n" in (task / "prepare.py").read_text()

    code, out = run_cli("validate", str(task), capsys=capsys)
    assert code == 0, out
    assert "scoring: protected" in out
    assert "limits: memory 256m, cpus 0.5" in out

    code, out = run_cli("run", str(task), "--tag", "t", "--max-experiments", "3", capsys=capsys)
    assert code == 0, out
    rows = results(task, "t")
    assert rows[0].status.value == "keep" and rows[0].metric == pytest.approx(2.5739, abs=1e-4)
    assert len(rows) == 4
    assert {r.status.value for r in rows[1:]} <= {"keep", "discard"}, [r.description for r in rows]
    assert all(r.description.startswith("mutate:") for r in rows[1:])

    night = bench.pace(events(task, "t"))
    assert night.experiments == 3 and night.skipped == 0 and night.in_flight == 1
    assert night.span > 3 * 0.2 and night.harness_seconds is not None


@pytest.mark.engine_free
def test_the_pace_counts_experiments_after_the_baseline_and_how_many_ran_at_once():
    bench = load_bench()

    def run(number: int, end: float, seconds: float) -> dict:
        return {"ts": end, "event": "run", "experiment": number, "train_seconds": seconds}

    def decision(number: int, ts: float, status: str = "discard") -> dict:
        return {"ts": ts, "event": "decision", "experiment": number, "status": status}

    log = [
        {"ts": 90.0, "event": "setup"},
        run(0, 99.0, 4.0),
        decision(0, 100.0, "keep"),
        run(1, 104.0, 3.0),  # 101-104
        run(2, 105.0, 3.0),  # 102-105: two at once
        decision(1, 104.5),
        decision(2, 105.5),
        decision(3, 105.6, "skipped"),
        run(4, 109.0, 3.0),  # 106-109, after both ended
        decision(4, 110.0),
    ]
    night = bench.pace(log)
    assert night.experiments == 3 and night.skipped == 1
    assert night.span == pytest.approx(10.0)
    assert night.per_hour == pytest.approx(3 / 10 * 3600)
    assert night.in_flight == 2
    assert night.steady == pytest.approx(2 / (110.0 - 104.5) * 3600)  # after the first result
    assert bench.pace(log, first_wave=2).steady == pytest.approx(1 / (110.0 - 105.5) * 3600)
    assert bench.pace(log, first_wave=3).steady is None  # no result after the first wave
    assert night.nodes == frozenset()
    assert night.started_at_once == 0  # no `started` events: a loop of one at a time

    log.insert(3, {"ts": 101.0, "event": "started", "experiment": 1, "running": [1]})
    log.insert(5, {"ts": 102.0, "event": "started", "experiment": 2, "running": [1, 2]})
    assert bench.pace(log).started_at_once == 2
