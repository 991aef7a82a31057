"""progress.png: every experiment as a point, the kept ones labelled, the running best as a step line.

matplotlib is imported here, lazily, with the headless Agg canvas (no pyplot, no display).
"""

from __future__ import annotations

import io
import itertools
from typing import Any

from harness.report_data import FAILED, NightData
from harness.seams import Verdict

WIDTH, HEIGHT, DPI = 16, 9, 100  # 1600 x 900 pixels
KEPT_COLOUR = "#1a9850"
_MAX_LABELS = 25
_CHAR_PX, _LINE_PX = 6.9, 16.0  # a 9-point label's average character width and height
_LABEL_CHARS = 48
_FAILURE_MARKS = {
    Verdict.CRASH: ("x", "#d73027"),
    Verdict.TIMEOUT: ("v", "#f46d43"),
    Verdict.INVALID: ("D", "#7b3294"),
    Verdict.SKIPPED: ("|", "#8c8c8c"),
}


class PlotUnavailable(Exception):
    """matplotlib is not installed."""


def render_progress(data: NightData) -> bytes:
    """The progress plot as PNG bytes."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotUnavailable(
            "matplotlib is not installed, so the report has no plot: "
            "pip install 'matplotlib>=3.8' (it comes with overnight's own dependencies)"
        ) from None
    figure = Figure(figsize=(WIDTH, HEIGHT), dpi=DPI)
    FigureCanvasAgg(figure)
    # Fixed margins rather than tight_layout, which would draw the whole figure once more.
    figure.subplots_adjust(left=0.06, right=0.98, bottom=0.08, top=0.9)
    axes = figure.add_subplot()
    _draw(axes, data)
    buffer = io.BytesIO()
    figure.savefig(
        buffer, format="png", dpi=DPI, metadata={"Software": None},
        pil_kwargs={"compress_level": 3},
    )  # fmt: skip
    return buffer.getvalue()


def _draw(axes: Any, data: NightData) -> None:
    rows = [r for r in data.rows if r.metric is not None and r.status not in FAILED]
    kept = [r for r in rows if r.status is Verdict.KEEP]
    last = max((r.experiment for r in data.rows), default=0)
    low, high = _limits(data)
    discarded = [r for r in rows if r.status is Verdict.DISCARD]
    again = [r for r in rows if r.status is Verdict.REMEASURE and low <= r.metric <= high]  # type: ignore[operator]
    if again:  # the baseline's and the best's runs again: their spread is the noise
        axes.scatter(
            [r.experiment for r in again],
            [r.metric for r in again],
            s=14,
            marker="_",
            c=KEPT_COLOUR,
            zorder=3,
            label="runs again",
        )
    inside = [r for r in discarded if low <= r.metric <= high]  # type: ignore[operator]
    axes.scatter(
        [r.experiment for r in inside],
        [r.metric for r in inside],
        s=20,
        c="#a8a8a8",
        alpha=0.7,
        zorder=2,
        label="discarded",
    )
    _outside(axes, [r for r in discarded if not low <= r.metric <= high], low, high)  # type: ignore[operator]
    _running_best(axes, data, kept, last)
    axes.scatter(
        [r.experiment for r in kept],
        [r.metric for r in kept],
        s=60,
        c=KEPT_COLOUR,
        edgecolors="black",
        linewidths=0.6,
        zorder=4,
        label="kept",
    )
    _failures(axes, data)
    direction = "higher" if data.maximize else "lower"
    axes.set_ylim(low, high)
    axes.set_xlim(-0.5, max(last, 1) + 0.5)
    _labels(axes, kept, data.maximize)  # after the limits: it places them in pixels
    axes.set_xlabel("experiment", fontsize=13)
    axes.set_ylabel(f"{data.metric} ({direction} is better)", fontsize=13, parse_math=False)
    counts = f"{data.proposals} experiments, {max(len(kept) - 1, 0)} kept"
    figure = axes.get_figure()
    figure.suptitle(f"{data.task} / {data.tag}: {counts}", fontsize=15, parse_math=False)
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.tick_params(labelsize=11)
    axes.grid(True, alpha=0.25)
    # Above the plot, where it hides no point ("best" placement would also cost a search).
    axes.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=8, fontsize=11, frameon=False)


def _limits(data: NightData) -> tuple[float, float]:
    """From just past the best to a little past the baseline on the worse side."""
    base, best = data.baseline, data.best
    values = [r.metric for r in data.rows if r.metric is not None]
    if base is None or best is None or base.metric is None or best.metric is None:
        low, high = (min(values), max(values)) if values else (0.0, 1.0)
        pad = (high - low) * 0.1 or abs(high) * 0.1 or 1.0
        return low - pad, high + pad
    span = abs(best.metric - base.metric) or abs(base.metric) * 0.05 or 1.0
    if data.noise:
        span = max(span, 2 * data.noise)
    if data.maximize:
        return base.metric - 0.6 * span, best.metric + 0.15 * span
    return best.metric - 0.15 * span, base.metric + 0.6 * span


def _outside(axes: Any, rows: Any, low: float, high: float) -> None:
    """Points off the chart are drawn at its edge, pointing the way they went."""
    if not rows:
        return
    above = [r for r in rows if r.metric > high]
    below = [r for r in rows if r.metric < low]
    for group, marker, y in ((above, "^", high), (below, "v", low)):
        if group:
            axes.scatter(
                [r.experiment for r in group],
                [y] * len(group),
                marker=marker,
                s=22,
                c="#b0b0b0",
                clip_on=False,
                zorder=2,
            )


def _decided_at(data: NightData, kept: list[Any]) -> list[int]:
    """Where each keep became the best along the axis: the highest experiment number decided by
    then. One worker decides in number order, so that is the keep's own number; with --workers
    N a keep of #3 decided after #5 starts its step at 5, so the line never runs backwards."""
    highest, at = 0, {}
    for row in data.rows:
        highest = max(highest, row.experiment)
        at[id(row)] = highest
    return [at.get(id(row), row.experiment) for row in kept]


def _running_best(axes: Any, data: NightData, kept: Any, last: int) -> None:
    if not kept:
        return
    xs = [*_decided_at(data, kept), last]
    ys = [r.metric for r in kept] + [kept[-1].metric]
    axes.step(
        xs, ys, where="post", color=KEPT_COLOUR, linewidth=2, alpha=0.8, zorder=3,
        label="running best",
    )  # fmt: skip
    if data.noise:
        axes.fill_between(
            xs,
            [y - data.noise for y in ys],
            [y + data.noise for y in ys],
            step="post",
            color=KEPT_COLOUR,
            alpha=0.12,
            zorder=1,
            label=f"noise (±{data.noise:.3g})",
        )


def _labels(axes: Any, kept: Any, maximize: bool) -> None:
    """Each kept experiment's description, on the side of the step line away from the points,
    biggest steps first, skipping any that would overlap one already placed."""
    steps = sorted(itertools.pairwise(kept), key=lambda pair: abs(pair[1].metric - pair[0].metric))
    right_edge = axes.transAxes.transform((1.0, 0.0))[0]
    placed: list[tuple[float, float, float, float]] = []
    for _, row in reversed(steps):
        if len(placed) == _MAX_LABELS:
            break
        text = row.description.strip()
        if len(text) > _LABEL_CHARS:
            text = text[: _LABEL_CHARS - 1] + "…"
        text = f"#{row.experiment} {text}"
        x, y = axes.transData.transform((row.experiment, row.metric))
        spot = _free_spot(x, y, len(text) * _CHAR_PX, right_edge, maximize, placed)
        if spot is None:
            continue
        placed.append(spot[0])
        dx, dy, left = spot[1], spot[2], spot[3]
        axes.annotate(
            text,
            (row.experiment, row.metric),
            textcoords="offset points",
            xytext=(_px_to_pt(dx), _px_to_pt(dy)),
            fontsize=9,
            color="#0b5a2b",
            ha="left" if left else "right",
            va="top" if maximize else "bottom",
            parse_math=False,
            annotation_clip=True,
            arrowprops={"arrowstyle": "-", "color": "#0b5a2b", "alpha": 0.4, "lw": 0.6}
            if abs(dy) > 6
            else None,
        )


def _free_spot(x: Any, y: Any, width: Any, right_edge: Any, maximize: Any, placed: Any) -> Any:
    """(box, dx, dy, text to the right) for a label near the point (x, y) in pixels, on the free
    side of the step line (above it when minimizing, below when maximizing), or None."""
    sign = -1 if maximize else 1
    sides = (True, False) if x + 6 + width <= right_edge else (False,)
    for lines in range(4):
        dy = sign * (6 + lines * _LINE_PX)
        for left in sides:
            dx = 6 if left else -6
            box_x = (x + dx, x + dx + width) if left else (x + dx - width, x + dx)
            box_y = (y + dy - _LINE_PX, y + dy) if maximize else (y + dy, y + dy + _LINE_PX)
            box = (*box_x, *box_y)
            if not any(_overlap(box, other) for other in placed):
                return box, dx, dy, left
    return None


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Whether two (left, right, bottom, top) boxes in pixels intersect."""
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


def _px_to_pt(pixels: float) -> float:
    return pixels * 72 / DPI


def _failures(axes: Any, data: NightData) -> None:
    """Crashes, timeouts, invalid and skipped experiments, as marks along the bottom."""
    transform = axes.get_xaxis_transform()  # x in data, y in axes fractions
    for status, (marker, colour) in _FAILURE_MARKS.items():
        xs = [r.experiment for r in data.rows if r.status is status]
        if xs:
            axes.scatter(
                xs,
                [0.02] * len(xs),
                marker=marker,
                s=36,
                c=colour,
                transform=transform,
                zorder=5,
                label=f"{status.value} ({len(xs)})",
            )
