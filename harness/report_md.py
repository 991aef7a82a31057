"""report.md: the same report for a pull request or a chat, with links relative to the run folder.

Untrusted text is escaped so that it renders as text: HTML and Markdown syntax in a description
become literal characters, and code blocks are fenced longer than any backtick run inside them.
"""

from __future__ import annotations

import re

from harness import report_summary as summary
from harness.report_data import PHASES, NightData, phase_summary

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~@])")  # what is special inside a line (no line starts here)


def _t(text: object) -> str:
    """Untrusted text for the middle of a Markdown line or table cell, shown as written."""
    return _MD_SPECIAL.sub(r"\\\1", _plain(text))


def _plain(text: object) -> str:
    """Our own text on one line, with HTML switched off."""
    flat = " ".join(str(text).split())
    return flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _code(text: str, language: str = "") -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text.rstrip()}\n{fence}"


def render_markdown(data: NightData, has_plot: bool) -> str:
    lines = [f"# overnight: {_t(data.task)} / {_t(data.tag)}", ""]
    lines += [f"- **{label}**: {_plain(value)}" for label, value in summary.headline(data)]
    lines.append("")
    if has_plot:
        lines += ["![progress: the metric of each experiment, the running best](progress.png)", ""]
    lines += _kept(data)
    if data.best_diff:
        best = data.best
        assert best is not None
        lines += [
            f"## The best train.py (experiment {best.experiment}) against the baseline",
            "",
            "<details><summary>full diff</summary>",
            "",
            _code(data.best_diff, "diff"),
            "",
            "</details>",
            "",
        ]
    lines += _failures(data)
    lines += _timing(data)
    lines += ["## Settings", ""]
    lines += [f"- **{label}**: {_plain(value)}" for label, value in summary.settings(data)]
    lines += [
        "",
        "All experiments: [results.tsv](results.tsv), events: [events.jsonl](events.jsonl)",
    ]
    return "\n".join(lines) + "\n"


def _kept(data: NightData) -> list[str]:
    lines = [f"## Kept changes ({len(data.kept)})", ""]
    if not data.kept:
        return [*lines, "None yet: the baseline is the best.", ""]
    lines += ["| # | description | metric | delta | diff |", "|---:|---|---:|---:|---|"]
    for item in data.kept:
        row = item.row
        link = f"[diff.patch](experiments/{row.experiment:04d}/diff.patch)"
        lines.append(
            f"| {row.experiment} | {_t(row.description)} | {summary.number(row.metric)} "
            f"| {summary.signed(item.delta)} | {link} |"
        )
    return [*lines, ""]


def _failures(data: NightData) -> list[str]:
    lines = ["## Failures", ""]
    if not data.failures:
        return [*lines, "None.", ""]
    for group in data.failures:
        example = f"experiments/{group.example:04d}/output.txt"
        evaluation = example.replace("output.txt", "evaluate.txt")
        also = f", [evaluate.txt]({evaluation})" if (data.folder / evaluation).exists() else ""
        lines += [
            f"- **{group.status.value}**: {len(group.experiments)} "
            f"(latest: experiment {group.example}, [output.txt]({example}){also})",
            "",
            _code(group.tail),
            "",
        ]
    return lines


def _timing(data: NightData) -> list[str]:
    phases = phase_summary(data)
    if not phases:
        return []
    lines = [
        "## Time per experiment",
        "",
        "| phase | experiments | median | 90th pct | total |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in PHASES:
        if name in phases:
            p = phases[name]
            lines.append(
                f"| {name} | {p['count']:.0f} | {p['median']:.2f}s | {p['p90']:.2f}s "
                f"| {p['total'] / 60:.1f} min |"
            )
    return [*lines, ""]
