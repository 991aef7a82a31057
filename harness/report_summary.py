"""The words and numbers both report formats share: the headline, the settings, number formats."""

from __future__ import annotations

from typing import Any

from harness.report_data import NightData


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def signed(value: float) -> str:
    return f"{value:+.4g}"


def improvement(data: NightData) -> tuple[float | None, float | None]:
    """(percent change of the metric, change in noise units), signed so that positive is better."""
    base, best = data.baseline, data.best
    if base is None or best is None or base.metric is None or best.metric is None:
        return None, None
    gain = best.metric - base.metric if data.maximize else base.metric - best.metric
    percent = gain / abs(base.metric) * 100 if base.metric else None
    return percent, (gain / data.noise if data.noise else None)


def headline(data: NightData) -> list[tuple[str, str]]:
    """(label, value) pairs, most important first."""
    base, best = data.baseline, data.best
    items = []
    if base is not None and best is not None:
        items.append((data.metric, f"{number(base.metric)} → {number(best.metric)}"))
        percent, units = improvement(data)
        better = []
        if percent is not None:
            better.append(f"{percent:+.2f}%")
        if units is not None:
            better.append(f"{units:+.1f} × noise")
        if better:
            items.append(("improvement", ", ".join(better)))
        items.append(("best", f"experiment {best.experiment} ({best.commit})"))
    else:
        items.append((data.metric, "no baseline yet"))
    kept = len(data.kept)
    rate = f" ({kept / data.proposals:.0%})" if data.proposals else ""
    items.append(("experiments", f"{data.proposals} run, {kept} kept{rate}"))
    if data.first_ts is not None and data.last_ts is not None:
        items.append(("hours", f"{(data.last_ts - data.first_ts) / 3600:.2f}"))
    peak = max((r.memory_gb for r in data.rows), default=0.0)
    if peak > 0:
        items.append(("peak memory", f"{peak:.1f} GB (the largest training run)"))
    tokens = data.tokens
    if tokens["calls"] or data.cost_usd:
        items.append(("cost", f"${data.cost_usd:.2f}"))
        items.append(
            (
                "tokens",
                f"{tokens['input']:,} in ({tokens['cached_input']:,} cached), "
                f"{tokens['output']:,} out, {tokens['calls']:,} calls",
            )
        )
    reason = data.state.get("reason")
    items.append(("state", f"{data.state.get('state', '?')}" + (f": {reason}" if reason else "")))
    return items


def settings(data: NightData) -> list[tuple[str, str]]:
    """The settings the night ran with, from config.json."""
    s, config = data.settings, data.config
    if not s:
        return [("settings", "config.json is missing or unreadable")]
    sandbox, agent, night = s.get("sandbox", {}), s.get("agent", {}), s.get("night", {})
    protected = "protected: evaluate() in its own container" if s.get("protected") else (
        "inline: read from train.py's output (unprotected)"
    )  # fmt: skip
    items = [
        ("metric", f"{s.get('metric')} ({s.get('direction')}), {protected}"),
        (
            "budgets",
            f"time_budget {_seconds(s.get('time_budget'))}, timeout {_seconds(s.get('timeout'))}, "
            f"eval_timeout {_seconds(sandbox.get('eval_timeout'))}, "
            f"setup_timeout {_seconds(sandbox.get('setup_timeout'))}, "
            f"confirm_runs {s.get('confirm_runs', 0)}",
        ),
        ("keep rule", _keep_rule(data)),
        ("image", str(config.get("image", s.get("image")))),
        ("isolation", str(config.get("isolation", "docker"))),
        ("limits", _limits(sandbox)),
        ("agent", _agent(agent)),
        ("night", f"max_consecutive_crashes {night.get('max_consecutive_crashes')}"),
    ]
    if "hardening" in config:
        items.append(("hardening", _flat(config["hardening"])))
    if config.get("prepare_sha256"):
        items.append(("prepare.py", f"sha256 {str(config['prepare_sha256'])[:16]}"))
    return items


def _keep_rule(data: NightData) -> str:
    """noise_runs, min_improvement and remeasure_best_every, with the noise measured."""
    s = data.settings
    rule = (
        f"better than the best by more than {s['min_improvement']}"
        if s.get("min_improvement")
        else "strictly better than the best"
    )
    parts = [rule, f"noise_runs {s.get('noise_runs', 1)}"]
    if data.noise is not None and data.noise_runs > 1:
        parts.append(f"noise {data.noise:.3g} (standard deviation of {data.noise_runs} runs)")
    if s.get("remeasure_best_every"):
        parts.append(f"the best re-measured every {s['remeasure_best_every']} experiments")
    return ", ".join(parts)


def _seconds(value: Any) -> str:
    return f"{value:g}s" if isinstance(value, int | float) else "-"


def _limits(sandbox: dict[str, Any]) -> str:
    parts = [
        f"{key} {sandbox[key]}" for key in ("memory", "cpus", "pids", "tmpfs") if key in sandbox
    ]
    parts.append(f"runtime {sandbox.get('runtime') or 'default'}")
    parts.append(f"gpus {sandbox.get('gpus') or 'none'}")
    parts.append(f"backend {sandbox.get('backend', 'docker')}")
    return ", ".join(parts)


def _agent(agent: dict[str, Any]) -> str:
    parts = [str(agent.get("provider", "?"))]
    for key in ("model", "seed", "script", "max_cost"):
        if agent.get(key) is not None:
            parts.append(f"{key} {agent[key]}")
    return ", ".join(parts)


def _flat(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_flat(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_flat(v) for v in value)
    return str(value)
