"""`overnight status`: what a tagged run has done so far, read from its files alone (no Docker, no git).

The text form is printable whatever the files hold (a ledger written by an older version, a
hand-edited config): control characters are shown as escapes. The JSON form escapes them too.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from harness import untrusted
from harness.errors import TaskError
from harness.ledger import STATE_DIR, RunDir
from harness.noise import baseline_runs, current_best, noise_estimate, proposals, runs_of_best
from harness.runstate import describe
from harness.seams import ExperimentRecord


def list_tags(task_dir: Path) -> list[str]:
    base = task_dir / STATE_DIR
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / "results.tsv").exists())


def status_report(task_dir: Path, tag: str | None) -> dict[str, Any]:
    tags = list_tags(task_dir)
    if tag is None:
        if not tags:
            raise TaskError(f"{task_dir}: no runs yet; start one with `overnight run {task_dir}`")
        tag = max(tags, key=lambda t: (task_dir / STATE_DIR / t / "results.tsv").stat().st_mtime)
    run_dir = RunDir(task_dir, tag)
    if not run_dir.results.exists():
        known = ", ".join(tags) or "none"
        raise TaskError(f"{run_dir.root}: no run tagged {tag!r} (tags here: {known})")
    rows = run_dir.rows()
    config = json.loads(run_dir.config.read_text()) if run_dir.config.exists() else {}
    settings = config.get("settings", {})
    confirm_runs = settings.get("confirm_runs") or 0
    best = current_best(rows, confirm_runs)
    baseline = baseline_runs(rows)
    return {
        "tag": tag,
        "folder": str(run_dir.root),
        **describe(run_dir.root),
        "metric": settings.get("metric"),
        "direction": settings.get("direction"),
        "protected": settings.get("protected"),
        "isolation": config.get("isolation", "docker"),
        "experiments": len(proposals(rows)),
        "counts": dict(Counter(r.status.value for r in rows)),
        "baseline": _summary(
            baseline[0]
            if baseline
            else next((r for r in reversed(rows) if r.experiment == 0), None)
        ),
        "best": _summary(best),
        "best_runs": runs_of_best(rows, confirm_runs),
        "noise": _noise(rows, settings),
        "branch": f"overnight/{tag}",
        "tokens": _tokens(run_dir),
        "cost_usd": round(sum(r.cost_usd for r in rows), 6),
    }


def _tokens(run_dir: RunDir) -> dict[str, int]:
    """Model tokens of the tag's proposals, summed from the proposal events."""
    totals = dict.fromkeys(("calls", "input", "cached_input", "output"), 0)
    if not run_dir.events.exists():
        return totals
    with open(run_dir.events, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if '"proposal"' not in line:
                continue
            try:
                usage = json.loads(line).get("usage") or {}
            except json.JSONDecodeError:
                continue  # a torn last line
            totals["calls"] += int(usage.get("calls", 0))
            totals["input"] += int(usage.get("input_tokens", 0))
            totals["cached_input"] += int(usage.get("cached_input_tokens", 0))
            totals["output"] += int(usage.get("output_tokens", 0))
    return totals


def _noise(rows: list[ExperimentRecord], settings: dict[str, Any]) -> dict[str, Any] | None:
    """The measured noise and the keep threshold, when the baseline ran more than once."""
    runs = [r for r in baseline_runs(rows) if r.metric is not None]
    std = noise_estimate(rows)
    if std is None:
        return None
    return {
        "std": std,
        "runs": len(runs),
        "baseline_mean": sum(r.metric for r in runs if r.metric is not None) / len(runs),
        "min_improvement": settings.get("min_improvement"),
    }


def _summary(row: ExperimentRecord | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "metric": row.metric,
        "commit": row.commit,
        "experiment": row.experiment,
        "status": row.status.value,
        "description": row.description,
    }


def format_status(report: dict[str, Any]) -> str:
    best, base = report["best"], report["baseline"]
    lines = [
        f"tag {report['tag']} ({_state_line(report)}), "
        f"{report['experiments']} experiments, "
        + (
            f"metric {report['metric']} ({report['direction']})"
            if report["metric"]
            else "metric not chosen yet (the baseline settles it)"
        )
        + ("" if report["protected"] else "  [UNPROTECTED: metric read from train.py's output]")
        + (
            ""
            if report["isolation"].startswith("docker")
            else "  [WEAKER ISOLATION: --sandbox local]"
        ),
        "counts: " + ", ".join(f"{k} {v}" for k, v in sorted(report["counts"].items())),
    ]
    noise = report.get("noise")
    if base and base["metric"] is not None and noise:
        lines.append(
            f"baseline: {noise['baseline_mean']:.6g}, the mean of {noise['runs']} runs "
            f"({base['commit']})"
        )
        rule = f"; a keep must beat the best by more than {noise['min_improvement']}"
        lines.append(
            f"noise: {noise['std']:.3g} (standard deviation of the baseline's runs)"
            + (rule if noise["min_improvement"] else "")
        )
    elif base and base["metric"] is not None:
        lines.append(f"baseline: {base['metric']:.6g} ({base['commit']})")
    elif base:
        lines.append(f"baseline: no valid metric ({base['status']}); fix train.py and run again")
    if best:
        runs = report.get("best_runs", 1)
        mean = f" (mean of {runs} runs)" if runs > 1 and best["metric"] is not None else ""
        lines.append(
            f"best: {_value(best['metric'])}{mean} at experiment {best['experiment']} "
            f"({best['commit']}): {best['description']}"
        )
    if report.get("running"):
        lines.append("running now: " + ", ".join(f"#{n}" for n in report["running"]))
    tokens = report["tokens"]
    if tokens["calls"]:
        lines.append(
            f"model: {tokens['calls']} calls, {tokens['input']} input tokens "
            f"({tokens['cached_input']} cached), {tokens['output']} output, "
            f"${report['cost_usd']:.4f}"
        )
    lines.append(f"results: {report['folder']}/results.tsv   branch: {report['branch']}")
    return untrusted.printable("\n".join(lines))


def _value(metric: float | None) -> str:
    return "-" if metric is None else f"{metric:.6g}"


def _state_line(report: dict[str, Any]) -> str:
    reason = report.get("reason")
    return f"{report['state']}: {reason}" if reason else report["state"]
