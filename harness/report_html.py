"""report.html: one self-contained page (inline CSS, the plot as a data URI, no script, no request).

Every string from the run folder goes through `_e` (HTML escaping); links are relative to the
run folder, where the page is written.
"""

from __future__ import annotations

import base64
import html

from harness import report_summary as summary
from harness.report_data import PHASES, NightData, phase_summary
from harness.seams import Verdict

_ALL_ROWS_CAP = 2_000  # rows of the full table; results.tsv has them all

_CSS = """
body{font:15px/1.45 -apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:0;
color:#1d1d1f;background:#fff}
main{max-width:1280px;margin:0 auto;padding:24px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:20px;margin:32px 0 8px;border-bottom:1px solid #ddd}
.sub{color:#666;margin:0 0 16px}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid #ddd;border-radius:8px;padding:8px 14px;min-width:150px}
.card b{display:block;font-size:12px;color:#666;font-weight:600}
.card span{font-size:18px}
img.plot{width:100%;height:auto;border:1px solid #eee}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eee;vertical-align:top}
th{background:#f6f6f6}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
pre{background:#f7f7f9;border:1px solid #e4e4e8;padding:8px;overflow:auto;font-size:12.5px;
max-height:480px;white-space:pre}
.add{color:#116329;background:#e6ffec}.del{color:#82071e;background:#ffebe9}.hunk{color:#6639ba}
details>summary{cursor:pointer;color:#0550ae}
.keep{color:#116329;font-weight:600}.bad{color:#82071e}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def render_html(data: NightData, png: bytes | None, plot_note: str = "") -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # Nothing may load from anywhere: the page is one file, images are data URIs.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">",
        f"<title>overnight: {_e(data.task)} / {_e(data.tag)}</title>",
        f"<style>{_CSS}</style></head><body><main>",
        f"<h1>{_e(data.task)} / {_e(data.tag)}</h1>",
        f'<p class="sub">overnight report of <a href="results.tsv">results.tsv</a> and '
        f'<a href="events.jsonl">events.jsonl</a> in {_e(data.folder)}</p>',
        _headline(data),
        _plot(png, plot_note),
        _kept(data),
        _best_diff(data),
        _failures(data),
        _timing(data),
        _settings(data),
        _all_rows(data),
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"


def _headline(data: NightData) -> str:
    cards = "".join(
        f'<div class="card"><b>{_e(label)}</b><span>{_e(value)}</span></div>'
        for label, value in summary.headline(data)
    )
    return f'<section id="headline"><div class="cards">{cards}</div></section>'


def _plot(png: bytes | None, note: str) -> str:
    if png is None:
        return f'<section id="plot"><p class="bad">No plot: {_e(note)}</p></section>'
    uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    return (
        '<section id="plot"><h2>Progress</h2>'
        f'<img class="plot" id="progress" src="{uri}" width="1600" height="900" '
        "alt=\"each experiment's metric by experiment number, the kept ones labelled, "
        'the running best as a step line"></section>'
    )


def _kept(data: NightData) -> str:
    if not data.kept:
        return '<section id="kept"><h2>Kept changes</h2><p>None yet: the baseline is the best.</p></section>'
    rows = []
    for item in data.kept:
        row = item.row
        folder = f"experiments/{row.experiment:04d}"
        rows.append(
            f'<tr class="kept-row" id="kept-{row.experiment}"><td class="n">{row.experiment}</td>'
            f"<td>{_e(row.description)}"
            f"<details><summary>diff</summary>{_diff(item.diff)}</details></td>"
            f'<td class="n">{_e(summary.number(row.metric))}</td>'
            f'<td class="n">{_e(summary.signed(item.delta))}</td>'
            f'<td><a href="{folder}/diff.patch">diff.patch</a> '
            f'<a href="{folder}/output.txt">output.txt</a>{_evaluate_link(data, row.experiment)}'
            "</td></tr>"
        )
    head = "<tr><th>#</th><th>description</th><th>metric</th><th>delta</th><th>files</th></tr>"
    return (
        f'<section id="kept"><h2>Kept changes ({len(data.kept)})</h2>'
        f"<table>{head}{''.join(rows)}</table></section>"
    )


def _diff(text: str) -> str:
    if not text.strip():
        return "<pre>(no diff recorded)</pre>"
    lines = []
    for line in text.splitlines():
        kind = ""
        if line.startswith("+") and not line.startswith("+++"):
            kind = "add"
        elif line.startswith("-") and not line.startswith("---"):
            kind = "del"
        elif line.startswith("@@"):
            kind = "hunk"
        lines.append(f'<span class="{kind}">{_e(line)}</span>' if kind else _e(line))
    return "<pre>" + "\n".join(lines) + "</pre>"


def _best_diff(data: NightData) -> str:
    if not data.best_diff:
        return ""
    best = data.best
    title = f"The best train.py (experiment {best.experiment}) against the baseline" if best else ""
    return (
        f'<section id="best-diff"><h2>{_e(title)}</h2>'
        f"<details><summary>full diff</summary>{_diff(data.best_diff)}</details></section>"
    )


def _evaluate_link(data: NightData, experiment: int) -> str:
    """A link to the evaluator's own output (for the human only), where there is one."""
    name = f"experiments/{experiment:04d}/evaluate.txt"
    return f' <a href="{name}">evaluate.txt</a>' if (data.folder / name).exists() else ""


def _failures(data: NightData) -> str:
    if not data.failures:
        return '<section id="failures"><h2>Failures</h2><p>None.</p></section>'
    parts = []
    for group in data.failures:
        numbers = ", ".join(str(n) for n in group.experiments[-20:])
        more = (
            "" if len(group.experiments) <= 20 else f" (the latest 20 of {len(group.experiments)})"
        )
        what = "why" if group.status is Verdict.SKIPPED else "end of its output"
        parts.append(
            f'<h3 class="bad">{_e(group.status.value)}: {len(group.experiments)}</h3>'
            f"<p>experiments {numbers}{_e(more)}</p>"
            f"<details><summary>experiment {group.example}: {what}</summary>"
            f"<pre>{_e(group.tail)}</pre></details>"
            f'<p><a href="experiments/{group.example:04d}/output.txt">output.txt</a>'
            f"{_evaluate_link(data, group.example)}</p>"
        )
    return f'<section id="failures"><h2>Failures</h2>{"".join(parts)}</section>'


def _timing(data: NightData) -> str:
    phases = phase_summary(data)
    if not phases:
        return ""
    rows = "".join(
        f"<tr><td>{phase}</td><td class='n'>{p['count']:.0f}</td>"
        f"<td class='n'>{p['median']:.2f}s</td><td class='n'>{p['p90']:.2f}s</td>"
        f"<td class='n'>{p['total'] / 60:.1f} min</td></tr>"
        for phase, p in ((name, phases[name]) for name in PHASES if name in phases)
    )
    head = (
        "<tr><th>phase</th><th>experiments</th><th>median</th><th>90th pct</th><th>total</th></tr>"
    )
    return f'<section id="timing"><h2>Time per experiment</h2><table>{head}{rows}</table></section>'


def _settings(data: NightData) -> str:
    rows = "".join(
        f"<tr><th>{_e(label)}</th><td>{_e(value)}</td></tr>"
        for label, value in summary.settings(data)
    )
    return f'<section id="settings"><h2>Settings</h2><table>{rows}</table></section>'


def _all_rows(data: NightData) -> str:
    shown = data.rows[-_ALL_ROWS_CAP:]
    note = "" if len(shown) == len(data.rows) else f" (the latest {len(shown)})"
    body = []
    for row in shown:
        times = data.times.get(row.experiment, {})
        cells = "".join(
            f"<td class='n'>{times[p]:.1f}</td>" if p in times else "<td class='n'>-</td>"
            for p in PHASES
        )
        status = row.status.value
        css = "keep" if row.status is Verdict.KEEP else "bad" if row.status.value in _BAD else ""
        body.append(
            f"<tr><td class='n'>{row.experiment}</td><td class='{css}'>{status}</td>"
            f"<td class='n'>{_e(summary.number(row.metric))}</td>{cells}"
            f"<td class='n'>{row.memory_gb:.1f}</td><td>{_e(row.description)}</td></tr>"
        )
    head = (
        "<tr><th>#</th><th>status</th><th>metric</th><th>propose s</th><th>train s</th>"
        "<th>evaluate s</th><th>memory GB</th><th>description</th></tr>"
    )
    return (
        f'<section id="all"><h2>All experiments</h2><details><summary>{len(data.rows)} rows'
        f"{_e(note)}</summary><table>{head}{''.join(body)}</table></details></section>"
    )


_BAD = {"crash", "timeout", "invalid"}
