"""The v5 refits as loop steps: load the daily series, refit, describe the result.

The result is not written here: :func:`leverloop.pipeline.loop.commit` persists it in the run's
one transaction, so a run that fails or is rejected leaves no half-applied meta-learning
behind (and a re-run over the same watermark sees the same inputs). New 5.1 weights feed the
*next* run's dbt build; 5.2 and 5.3 feed this run's lever update.
"""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path

from leverloop.learning.refit import MetaFit, MetaPolicy, refit
from leverloop.learning.regime_weights import FACTORS
from leverloop.pipeline.context import Context
from leverloop.store import learning


def refit_meta(ctx: Context, policy: MetaPolicy | None = None) -> MetaFit:
    with ctx.engine.connect() as conn:
        series = learning.load_series(conn)
        current = learning.current_global_weights(conn)
    return refit(series, current, policy)


# -- descriptions ------------------------------------------------------------------------


def _num(value: float | None, fmt: str = ".3f") -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, fmt)


def weights_markdown(meta: MetaFit) -> str:
    lines = [
        "# 5.1 Regime factor weights",
        "",
        "Weights of the edge factors that best predict next week's R/R delta, per regime "
        "(`*` = all regimes), shrunk toward the global weights; confidence = share of "
        "time-series CV folds in which they beat the reference. Used by the next dbt build.",
        "",
        "| regime | category | " + " | ".join(FACTORS) + " | confidence | pairs | folds |",
        "|---|---|" + "---|" * (len(FACTORS) + 3),
        "| prior (global) | all | "
        + " | ".join(_num(meta.prior_global[f]) for f in FACTORS)
        + " | | | |",
    ]
    for fit in meta.weights:
        lines.append(
            f"| {fit.regime} | {fit.category} | "
            + " | ".join(_num(fit.weights[f]) for f in FACTORS)
            + f" | {fit.confidence:.2f} | {fit.n_pairs} | {fit.folds} |"
        )
    if not meta.weights:
        lines.append("\n_Not enough week-over-week pairs yet: the current weights stay._")
    return "\n".join(lines) + "\n"


def halflives_markdown(meta: MetaFit) -> str:
    counts: dict[str, int] = {}
    for h in meta.halflives.values():
        counts[h.fit.status] = counts.get(h.fit.status, 0) + 1
    lines = [
        "# 5.2 Alpha half-lives",
        "",
        "How fast each pattern's edge decays (profile-likelihood interval); the applied "
        "half-life is the lessons' `decay_halflife_hours`, persistence scales the nudges. "
        + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())),
        "",
        "| pattern | category | status | half-life (d) | interval (d) | amplitude (z) "
        "| applied (h) | persistence |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for h in sorted(meta.halflives.values(), key=lambda h: (h.fit.status, h.key)):
        if h.fit.status == "insufficient":
            continue
        fit = h.fit
        interval = (
            f"{_num(fit.ci_low_days, '.1f')} - {_num(fit.ci_high_days, '.1f')}"
            if fit.ci_low_days is not None
            else "-"
        )
        lines.append(
            f"| {h.key[1]} | {h.key[2]} | {fit.status} | {_num(fit.half_life_days, '.1f')} "
            f"| {interval} | {_num(fit.amplitude, '+.3f')} ({_num(fit.amplitude_z, '.1f')}) "
            f"| {h.applied_hours:.0f} | {h.persistence:.2f} |"
        )
    return "\n".join(lines) + "\n"


def factors_markdown(meta: MetaFit) -> str:
    groups = meta.factor_groups()
    singles = sum(1 for m in meta.factors if m.factor_size == 1)
    lines = [
        "# 5.3 Latent factors",
        "",
        f"{len(groups)} factors group overlapping patterns ({singles} patterns stand alone). "
        "Members share their evidence: their combined capital exposure is capped at a single "
        "pattern's.",
        "",
        "| factor | pattern | category | loading | effective patterns |",
        "|---|---|---|---|---|",
    ]
    for fid, members in sorted(groups.items()):
        effective = meta.effective_patterns(fid)
        for m in sorted(members, key=lambda m: m.key):
            lines.append(f"| {fid} | {m.key[1]} | {m.key[2]} | {m.loading:.2f} | {effective:.2f} |")
    return "\n".join(lines) + "\n"


# -- pictures ------------------------------------------------------------------------------


def _figure():
    import matplotlib

    matplotlib.use("Agg")  # no screen: render to files only
    import matplotlib.pyplot as plt

    return plt


def plot_pngs(meta: MetaFit) -> dict[str, bytes]:
    """PNG images of the weights per regime and the half-lives with their intervals."""
    plt = _figure()
    out: dict[str, bytes] = {}

    regimes = sorted({fit.regime for fit in meta.weights})
    if regimes:
        fig, ax = plt.subplots(figsize=(8, 3.5))
        width = 0.8 / (len(regimes) + 1)
        xs = range(len(FACTORS))
        ax.bar(
            [x - 0.4 + width / 2 for x in xs],
            [meta.prior_global[f] for f in FACTORS],
            width,
            label="prior (global)",
            color="lightgray",
        )
        for i, regime in enumerate(regimes, start=1):
            fit = next(f for f in meta.weights if f.regime == regime)
            ax.bar(
                [x - 0.4 + width * (i + 0.5) for x in xs],
                [fit.weights[f] for f in FACTORS],
                width,
                label=regime,
            )
        ax.set_xticks(list(xs), FACTORS)
        ax.axhline(0.0, color="black", linewidth=0.5)
        ax.set_ylabel("weight")
        ax.set_title("5.1 factor weights per regime")
        ax.legend(fontsize=7, ncol=3)
        out["regime-weights"] = _png(plt, fig)

    fits = sorted(
        (h for h in meta.halflives.values() if h.fit.status in ("fitted", "persistent")),
        key=lambda h: h.fit.half_life_days or 0.0,
    )
    if fits:
        fig, ax = plt.subplots(figsize=(8, max(2.5, 0.18 * len(fits) + 1)))
        for i, h in enumerate(fits):
            lo, hi = h.fit.ci_low_days or 0.0, h.fit.ci_high_days or 0.0
            color = "tab:blue" if h.fit.status == "fitted" else "tab:gray"
            ax.plot([lo, hi], [i, i], color=color, linewidth=1.5)
            ax.plot([h.fit.half_life_days], [i], "o", color=color, markersize=3)
        ax.set_yticks(range(len(fits)), [f"{h.key[1]} ({h.key[2]})" for h in fits], fontsize=6)
        ax.set_xscale("log")
        ax.set_xlabel("half-life, days (log scale; gray: persistent)")
        ax.set_title("5.2 edge half-lives with intervals")
        out["halflives"] = _png(plt, fig)
    return out


def _png(plt, fig) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def save_pngs(pngs: dict[str, bytes], directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data in pngs.items():
        path = directory / f"{name}.png"
        path.write_bytes(data)
        paths[name] = path
    return paths


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
