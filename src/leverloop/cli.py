"""``leverloop``: the command line over the same services the Prefect flows call."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from leverloop.errors import LeverloopError
from leverloop.settings import get_settings

app = typer.Typer(
    name="leverloop",
    help="Closed-loop learning for rule-based trading systems: outcomes -> edge -> bounded lever overrides.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
config_app = typer.Typer(help="Published pm_config versions.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")

console = Console()
if not console.is_terminal:  # piped or captured: do not squeeze tables into 80 columns
    console = Console(width=160)
err_console = Console(stderr=True)


def _context(*, migrate: bool = True):
    from leverloop.pipeline.context import open_context

    return open_context(get_settings(), migrate=migrate)


def _parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    from leverloop.domain.outcomes import parse_timestamp

    try:
        return parse_timestamp(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO-8601 timestamp") from None


def _prefect(quiet: bool) -> None:
    from leverloop.prefect_env import configure_prefect

    configure_prefect(get_settings(), quiet=quiet)


# ---------------------------------------------------------------------------- db


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision")] = "head") -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    from leverloop.store.migrate import upgrade

    ctx = _context(migrate=False)
    console.print(f"[green]schema at revision {upgrade(ctx.db, revision)}[/] ({ctx.db.describe()})")


@db_app.command("current")
def db_current() -> None:
    """Show the schema revision of the database."""
    from leverloop.store.migrate import current_revision, head_revision

    ctx = _context(migrate=False)
    current = current_revision(ctx.db)
    console.print(
        f"current: {current or '(empty)'}   newest: {head_revision()}   ({ctx.db.describe()})"
    )


# ---------------------------------------------------------------------------- data in


@app.command()
def ingest(
    path: Annotated[Path, typer.Argument(help="A .csv or .parquet file")],
    kind: Annotated[str, typer.Option(help="outcomes | counterfactuals")] = "outcomes",
) -> None:
    """Load closed trade outcomes (or counterfactuals) from a file; bad rows go to quarantine."""
    from leverloop.ingest import ingest_file

    targets = {"outcomes": "trade_outcomes", "counterfactuals": "counterfactuals"}
    if kind not in targets:
        raise typer.BadParameter("--kind must be outcomes or counterfactuals")
    ctx = _context()
    report = ingest_file(ctx.engine, path, target=targets[kind])  # type: ignore[arg-type]
    table = Table(title=f"ingest {path.name} (batch {report.batch_id})", show_header=False)
    table.add_row("read", f"{report.read:,}")
    table.add_row("landed", f"{report.landed:,}")
    table.add_row("duplicate", f"{report.duplicate:,}")
    table.add_row("quarantined", f"{report.quarantined:,}")
    if report.counterfactuals_landed or report.counterfactuals_quarantined:
        table.add_row("counterfactuals landed", f"{report.counterfactuals_landed:,}")
        table.add_row("counterfactuals quarantined", f"{report.counterfactuals_quarantined:,}")
    console.print(table)
    for code, count in sorted(report.reasons.items()):
        console.print(f"  quarantined [yellow]{code}[/]: {count}")
    if report.ignored_columns:
        console.print(f"  ignored columns: {', '.join(report.ignored_columns)}")


@app.command("simulate")
def simulate_cmd(
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same history)")] = 7,
    outcomes: Annotated[int, typer.Option(help="Number of closed actions to simulate")] = 90_000,
    days: Annotated[int, typer.Option(help="Length of the simulated history in days")] = 84,
    start: Annotated[str, typer.Option(help="First simulated day (ISO date)")] = "2026-01-05",
    until: Annotated[
        str | None, typer.Option(help="Only land outcomes closed up to this time")
    ] = None,
    truth: Annotated[
        Path | None, typer.Option(help="Also write the ground truth to this JSON file")
    ] = None,
) -> None:
    """Write a synthetic PM/DM history with known true edges into the raw tables."""
    from leverloop.simulator import SimConfig, simulate
    from leverloop.simulator.writer import (
        truth_document,
        write_outcomes,
        write_truth,
        write_truth_file,
    )

    start_at = _parse_time(start)
    assert start_at is not None
    config = SimConfig(seed=seed, outcomes=outcomes, days=days, start=start_at)
    ctx = _context()
    with console.status("simulating..."):
        sim = simulate(config)
        cells = write_truth(ctx.engine, sim)
        result = write_outcomes(ctx.engine, sim, until=_parse_time(until))
    console.print(
        f"seed {seed}: {result.rows:,} outcomes ({result.outcomes.landed:,} landed, "
        f"{result.outcomes.duplicate:,} already there), {result.counterfactuals.landed:,} counterfactuals, "
        f"{len(sim.arms)} (pattern, category) arms, {cells:,} ground-truth cells in sim.ground_truth"
    )
    if truth:
        write_truth_file(truth, truth_document(ctx.engine, sim))
        console.print(f"ground truth written to {truth}")


# ---------------------------------------------------------------------------- the loop


def _run_loop(as_of: datetime | None, lookback_days: int, gates: Any) -> dict[str, Any]:
    from flows.learning_loop import learning_loop

    return learning_loop(as_of=as_of, lookback_days=lookback_days, gates=gates)


@app.command()
def run(
    as_of: Annotated[
        str | None, typer.Option(help="The loop's clock (ISO-8601); default now")
    ] = None,
    lookback_days: Annotated[int, typer.Option(help="Evidence window in days")] = 28,
    on_exceed: Annotated[
        str | None,
        typer.Option(
            help="A change above the auto-publish limits: pause (wait for approval in the "
            "Prefect UI), reject, or approve (recorded as approved by policy). Default: pause "
            "with PREFECT_API_URL set, else reject (nobody can approve an ephemeral run)."
        ),
    ] = None,
    shadow: Annotated[
        bool, typer.Option(help="Publish as would-apply only; the current config stays")
    ] = False,
    wait: Annotated[
        float, typer.Option(help="Seconds to wait for a run in progress before giving up")
    ] = 300.0,
    quiet: Annotated[bool, typer.Option(help="Only warnings from Prefect")] = False,
) -> None:
    """Run the learning loop once (ephemeral Prefect, or the server in PREFECT_API_URL)."""
    from leverloop.domain.gates import GatePolicy
    from leverloop.prefect_env import server_configured

    _prefect(quiet)
    _context()  # fail fast, with a one-line error, before Prefect starts
    choice = on_exceed or ("pause" if server_configured() else "reject")
    if choice not in ("pause", "reject", "approve"):
        raise typer.BadParameter("--on-exceed must be pause, reject or approve")
    from flows.learning_loop import learning_loop

    result = learning_loop(
        as_of=_parse_time(as_of),
        lookback_days=lookback_days,
        gates=GatePolicy(on_exceed=choice, shadow=shadow),  # type: ignore[arg-type]
        lock_wait_seconds=wait,
    )
    status = result.get("status")
    if status == "published":
        console.print(
            f"[green]published pm_config v{result['version']}[/] ({result['overrides']} overrides, "
            f"gates: {result.get('gate_verdict')})"
        )
    elif status == "shadow":
        console.print(
            f"[yellow]stored shadow pm_config v{result['version']}[/] (would apply; the PM's "
            "current config is unchanged)"
        )
    elif status == "no_change":
        console.print("levers updated; the config is unchanged, nothing published")
    elif status == "no_new_evidence":
        console.print("no new evidence since the last run; nothing published")
    else:
        err_console.print(
            f"[red]nothing published ({status}):[/] {result.get('reason')}",
            highlight=False,
            soft_wrap=True,
        )
        if choice == "reject" and status == "rejected" and not server_configured():
            err_console.print(
                "To approve it: start `leverloop server`, set PREFECT_API_URL, rerun and approve "
                "in the UI, or rerun with --on-exceed approve (recorded)."
            )
        raise SystemExit(1)


@app.command()
def monitor(
    as_of: Annotated[
        str | None, typer.Option(help="End of the measurement window (ISO-8601); default now")
    ] = None,
    lookback_days: Annotated[int, typer.Option(help="Measurement window in days")] = 28,
    confidence: Annotated[
        float, typer.Option(help="Simultaneous confidence level of the intervals")
    ] = 0.95,
    min_n: Annotated[int, typer.Option(help="Outcomes needed in each arm for a verdict")] = 30,
    quiet: Annotated[bool, typer.Option(help="Only warnings from Prefect")] = False,
) -> None:
    """Measure each override's R/R effect against the holdout; decay or disable the ones that do not help."""
    _prefect(quiet)
    ctx = _context()
    from flows.monitoring import monitoring
    from leverloop.domain.scope import scope_label
    from leverloop.store.monitoring import run_effects

    summary = monitoring(
        as_of=_parse_time(as_of), lookback_days=lookback_days, confidence=confidence, min_n=min_n
    )
    verdicts = summary["verdicts"]
    console.print(
        f"{summary['overrides_measured']} overrides measured: {verdicts['keep']} keep, "
        f"{verdicts['decay_faster']} decay faster, [red]{verdicts['disable']} disable[/]"
    )
    with ctx.engine.connect() as conn:
        effects = run_effects(conn, summary["run_id"])
    if effects:
        table = Table(
            "lesson", "pattern", "cat", "scope", "n", "n holdout", "effect", "CI", "verdict"
        )
        for e in effects[:20]:
            ci = "" if e.ci_low is None else f"[{e.ci_low:+.3f}, {e.ci_high:+.3f}]"
            table.add_row(
                e.lesson_id,
                e.pattern_key,
                e.action_category,
                scope_label(e.scope),
                str(e.n_applied),
                str(e.n_holdout),
                "" if e.effect is None else f"{e.effect:+.3f}",
                ci,
                e.verdict,
            )
        console.print(table)


@app.command()
def serve(
    quiet: Annotated[bool, typer.Option(help="Only warnings from Prefect")] = False,
) -> None:
    """Serve the loop's deployment from prefect.yaml (hourly schedule) against a Prefect server."""
    from leverloop.prefect_env import server_configured

    _prefect(quiet)
    if not server_configured():
        raise LeverloopError(
            "PREFECT_API_URL: not set; start one with `uv run leverloop server` and set "
            "PREFECT_API_URL=http://127.0.0.1:4200/api (schedules need a real server)"
        )
    from leverloop.serving import serve_deployments

    settings = get_settings()
    _context()
    serve_deployments(settings.project_root / "prefect.yaml")


@app.command()
def server() -> None:
    """Start a Prefect server (UI at http://127.0.0.1:4200) on this project's Prefect home."""
    import os
    import subprocess

    _prefect(quiet=False)
    console.print(
        "Prefect UI: http://127.0.0.1:4200   In another shell: "
        "export PREFECT_API_URL=http://127.0.0.1:4200/api  (then leverloop run / serve use it)"
    )
    raise SystemExit(
        subprocess.call([sys.executable, "-m", "prefect", "server", "start"], env=os.environ.copy())
    )


@app.command()
def runs(limit: Annotated[int, typer.Option(help="How many")] = 10) -> None:
    """Recent loop runs and what they did."""
    from leverloop.store import runs as runs_store

    ctx = _context()
    with ctx.engine.connect() as conn:
        rows = runs_store.recent(conn, limit)
    table = Table("run", "status", "as_of", "evidence", "version")
    for r in rows:
        table.add_row(
            r["run_id"][:12],
            r["status"],
            r["as_of"].isoformat() if r["as_of"] else "",
            f"{r['evidence_count'] or 0:,}",
            str(r["published_version"] or ""),
        )
    console.print(table)
    for r in rows:  # why a run published nothing (blocked, rejected, failed), in full
        if r["error"]:
            console.print(
                f"[bold]{r['run_id'][:12]}[/] {r['status']}: {r['error']}",
                highlight=False,
                soft_wrap=True,
            )


@app.command(
    "dbt",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def dbt_cmd(
    ctx: typer.Context,
    as_of: Annotated[
        str | None, typer.Option(help="The marts' clock (ISO-8601); default now")
    ] = None,
    lookback_days: Annotated[int, typer.Option(help="Evidence window in days")] = 28,
) -> None:
    """Run any dbt command on leverloop's database, e.g. `leverloop dbt test` or `leverloop dbt docs generate`."""
    from leverloop.pipeline.dbt import DbtVars, run_dbt

    if not ctx.args:
        raise typer.BadParameter("give a dbt command, e.g. `leverloop dbt build`")
    context = _context()
    when = _parse_time(as_of) or datetime.now(UTC)
    run_dbt(context, list(ctx.args), DbtVars(as_of=when, lookback_days=lookback_days), quiet=False)
    console.print(
        f"[green]dbt {' '.join(ctx.args)}: ok[/] (target: {context.settings.home_dir / 'dbt' / 'target'})"
    )


# ---------------------------------------------------------------------------- config


@config_app.command("show")
def config_show(
    as_json: Annotated[bool, typer.Option("--json", help="Print the payload as JSON")] = False,
    version: Annotated[
        int | None, typer.Option(help="A specific version (default: current)")
    ] = None,
) -> None:
    """Print the current (or a given) pm_config."""
    from leverloop.domain.scope import scope_label
    from leverloop.store import configs

    ctx = _context()
    with ctx.engine.connect() as conn:
        row = configs.get(conn, version) if version else configs.current(conn)
    if row is None:
        raise LeverloopError(
            f"no pm_config version {version}" if version else "no pm_config has been published yet"
        )
    if as_json:
        sys.stdout.write(json.dumps(row.payload, indent=2, sort_keys=True) + "\n")
        return
    config = row.config()
    console.print(
        f"pm_config [bold]v{row.version}[/] (parent {row.parent_version or '-'}) created {row.created_at:%Y-%m-%d %H:%M:%S} "
        f"by run {str(row.created_by_run_id or '-')[:12]}  hash {row.content_hash[:12]}"
    )
    regimes = config.learning_overrides_enabled_regimes
    console.print(
        f"learning_overrides_enabled={config.learning_overrides_enabled}  "
        f"regimes={'all' if regimes is None else ', '.join(regimes)}"
    )
    table = Table("section", "pattern", "category", "scope", "levers", "lesson")
    for section, entries in (
        ("strength", config.pattern_strength_overrides),
        ("tuning", config.pattern_overrides),
    ):
        for e in entries:
            levers = ", ".join(f"{k}={v:g}" for k, v in e.flat_levers().items())
            lesson = (
                f"{e.lesson.id} s={e.lesson.strength:g} hl={e.lesson.decay_halflife_hours:g}h"
                + ("" if e.lesson.enabled else " disabled")
            )
            table.add_row(
                section, e.pattern_key, e.action_category, scope_label(e.scope), levers, lesson
            )
    console.print(table)


@app.command()
def levers() -> None:
    """The lever registry (bounds, categories, max step) and the tuning mapping table."""
    from leverloop.domain.levers import LEVERS
    from leverloop.domain.tuning import describe_rules

    table = Table(
        "lever",
        "family",
        "kind",
        "bounds",
        "neutral",
        "categories",
        "modules",
        "max step/day",
        title="Levers",
    )
    for lv in LEVERS:
        table.add_row(
            lv.path,
            lv.family.value,
            lv.kind.value,
            f"{lv.low:g}..{lv.high:g}",
            "-" if lv.neutral is None else f"{lv.neutral:g}",
            ", ".join(sorted(lv.categories)),
            ", ".join(sorted(lv.modules)),
            f"{lv.max_step:g}",
        )
    console.print(table)
    rows = describe_rules()
    mapping = Table(*rows[0].keys(), title="Tuning levers from counterfactual deltas")
    for row in rows:
        mapping.add_row(*row.values())
    console.print(mapping)


@config_app.command("history")
def config_history(limit: Annotated[int, typer.Option(help="How many versions")] = 20) -> None:
    """Published versions, newest first: parent, run, gate verdict, who decided, what changed."""
    from leverloop.store import configs

    ctx = _context()
    with ctx.engine.connect() as conn:
        rows = configs.history(conn, limit)
        head = configs.current(conn)
    table = Table("version", "", "parent", "created", "run", "verdict", "decided by", "changes")
    for v in rows:
        counts = (v.diff or {}).get("counts") or {}
        approval = (v.gate_report or {}).get("approval") or {}
        marker = "current" if head and v.version == head.version else "shadow" if v.shadow else ""
        table.add_row(
            f"v{v.version}",
            marker,
            f"v{v.parent_version}" if v.parent_version else "-",
            f"{v.created_at:%Y-%m-%d %H:%M:%S}",
            str(v.created_by_run_id or "-")[:18],
            v.verdict,
            str(approval.get("decided_by") or "-"),
            " ".join(
                f"{sign}{counts[k]}"
                for k, sign in (("added", "+"), ("changed", "~"), ("removed", "-"))
                if counts.get(k)
            )
            or "-",
        )
    console.print(table)


@config_app.command("diff")
def config_diff(
    a: Annotated[int, typer.Argument(help="From version")],
    b: Annotated[int, typer.Argument(help="To version")],
) -> None:
    """What changes from version A to version B, lever by lever."""
    from leverloop.domain.diff import diff_configs
    from leverloop.domain.scope import scope_label
    from leverloop.store import configs

    ctx = _context()
    with ctx.engine.connect() as conn:
        va, vb = configs.get(conn, a), configs.get(conn, b)
    missing = [str(n) for n, v in ((a, va), (b, vb)) if v is None]
    if missing:
        raise LeverloopError(f"no pm_config version {', '.join(missing)}")
    assert va is not None and vb is not None
    diff = diff_configs(va.config(), vb.config())
    for name, (before, after) in diff.flags.items():
        console.print(f"flag {name}: {before} -> {after}")
    if not diff.levers:
        console.print(
            f"v{a} and v{b} set the same levers" + (" and flags" if not diff.flags else "")
        )
        return
    table = Table("section", "pattern", "category", "scope", "lever", f"v{a}", f"v{b}", "change")
    for d in diff.levers:
        table.add_row(
            "strength" if d.section == "pattern_strength_overrides" else "tuning",
            d.pattern_key,
            d.action_category,
            scope_label(d.scope),
            d.lever,
            "-" if d.before is None else f"{d.before:g}",
            "-" if d.after is None else f"{d.after:g}",
            d.kind,
        )
    console.print(table)
    counts = diff.counts()
    console.print(
        f"{counts['added']} added, {counts['changed']} changed, {counts['removed']} removed"
    )


@config_app.command("rollback")
def config_rollback(
    version: Annotated[int, typer.Argument(help="The version whose content to restore")],
    reason: Annotated[str, typer.Option(help="Why (recorded with the new version)")],
    by: Annotated[
        str | None, typer.Option(help="Who rolls back (recorded); default: $USER")
    ] = None,
) -> None:
    """Publish VERSION's content again as a new version, after validating it and the output gates.

    The rolled-back config stays until an operator approves the next learned change.
    """
    import getpass

    from leverloop.pipeline.publish import rollback

    _prefect(quiet=True)
    ctx = _context()
    operator = by or getpass.getuser()
    new_version = rollback(ctx, version, operator=operator, reason=reason)
    console.print(
        f"[green]published pm_config v{new_version}[/] with the content of v{version} "
        f"(rollback by {operator}); the next learned change needs an operator's approval"
    )


@config_app.command("schema")
def config_schema() -> None:
    """Print the pm_config JSON Schema."""
    from leverloop.domain.pm_config import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")


# ---------------------------------------------------------------------------- demo


@app.command()
def demo(
    seed: Annotated[int, typer.Option(help="Simulation seed")] = 7,
    outcomes: Annotated[int, typer.Option(help="Simulated closed actions")] = 90_000,
    days: Annotated[int, typer.Option(help="Simulated days")] = 84,
    steps: Annotated[int, typer.Option(help="Loop runs as the simulated time passes")] = 6,
    lookback_days: Annotated[int, typer.Option(help="Evidence window in days")] = 28,
    verbose: Annotated[bool, typer.Option(help="Show Prefect's logs")] = False,
) -> None:
    """Simulate a PM book and run the closed loop on it end to end, then show what it learned."""
    _prefect(quiet=not verbose)
    from leverloop.demo import learned_vs_truth, reset_demo_database, run_demo
    from leverloop.domain.gates import GatePolicy

    # A simulation has nobody to approve: changes above the limits are approved by policy,
    # recorded as "approved-by-policy" in each version's gate report.
    demo_gates = GatePolicy(on_exceed="approve")
    from leverloop.simulator import SimConfig

    with console.status("starting the embedded PostgreSQL and migrating..."):
        ctx = _context()
        reset_demo_database(ctx)
    console.print(f"database: {ctx.db.describe()}")
    config = SimConfig(seed=seed, outcomes=outcomes, days=days)
    status = console.status(
        "simulating the history and starting Prefect (first start takes ~20 s)..."
    )
    status.start()

    def on_step(k: int, step) -> None:
        status.update(f"loop run {k + 1}/{steps}...")
        what = f"published v{step.version}" if step.version else step.status.replace("_", " ")
        console.print(
            f"  run {k}/{steps}  as_of {step.as_of:%Y-%m-%d %H:%M}  +{step.landed:,} outcomes  "
            f"-> {what} ({step.overrides} overrides)"
        )

    try:
        run_demo(
            ctx,
            config,
            steps=steps,
            lookback_days=lookback_days,
            run_loop=lambda as_of, lookback: _run_loop(as_of, lookback, demo_gates),
            on_step=on_step,
        )
    finally:
        status.stop()
    report = learned_vs_truth(ctx, seed=seed, as_of=config.end, lookback_days=lookback_days)
    _print_demo_report(report)


def _print_demo_report(report) -> None:
    from leverloop.domain.scope import scope_label

    table = Table(
        title="Strongest learned capital levers vs. the simulator's true edge (last window)"
    )
    for col in ("pattern", "cat", "scope", "lever", "value", "edge_raw", "n", "true edge"):
        table.add_column(
            col, justify="right" if col in ("value", "edge_raw", "n", "true edge") else "left"
        )
    for lv in report.strongest:
        ok = lv.true_edge is not None and (lv.value - 1.0) * lv.true_edge > 0
        truth = (
            "-" if lv.true_edge is None else f"[{'green' if ok else 'red'}]{lv.true_edge:+.3f}[/]"
        )
        table.add_row(
            lv.pattern_key,
            lv.action_category,
            scope_label(lv.scope),
            lv.lever,
            f"{lv.value:.3f}",
            "-" if lv.edge_raw is None else f"{lv.edge_raw:+.3f}",
            str(lv.n or "-"),
            truth,
        )
    console.print(table)
    agree, clear = report.sign_agreement
    console.print(
        f"{report.published_levers} non-neutral capital levers; {agree}/{clear} of those on cells with a clear true "
        f"edge (|edge| >= 0.05) point the right way; {report.zero_edge_cells} zero-edge cells stay within "
        f"{report.zero_edge_max_deviation:.3f} of neutral."
    )
    if report.meta:
        m = report.meta
        weights = (
            f"factor weights v{m.weights_version} for all regimes and {', '.join(m.weights_regimes) or 'no single regime'}"
            if m.weights_version
            else "factor weights still the documented defaults"
        )
        console.print(
            f"v5: {m.factors} latent factors; {m.planted_found}/{m.planted_groups} planted duplicate groups are "
            f"exactly one factor; {m.halflives_usable} usable half-lives ({m.halflives_decaying} decaying); "
            f"{weights}."
        )
    console.print(
        "\nWhere to look next:\n"
        "  uv run leverloop config show            # the published pm_config (add --json for the payload)\n"
        "  uv run leverloop runs                   # every loop run and what it did\n"
        "  uv run leverloop server                 # Prefect server + UI at http://127.0.0.1:4200 (runs, artifacts)\n"
        "  uv run leverloop serve                  # serve the hourly deployment (needs PREFECT_API_URL)"
    )


def main() -> None:
    try:
        app()
    except LeverloopError as exc:
        err_console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
