"""Initial schema: raw inputs, quarantine, lever state, pm_config versions, simulator truth.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

The raw tables follow ARCHITECTURE.md section 3. They are deliberately permissive (only the
key is NOT NULL): producers may insert directly, and rows that break the contract are moved
to ``leverloop.quarantine`` with a reason instead of being refused at the producer.
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("create schema if not exists raw")
    op.execute("create schema if not exists leverloop")
    op.execute("create schema if not exists sim")

    op.execute(
        """
        create table raw.trade_outcomes (
            outcome_id         text primary key,
            position_id        text,
            module             text,
            pattern_key        text,
            action_category    text,
            scope              jsonb,
            opened_at          timestamptz,
            closed_at          timestamptz,
            rr                 double precision,
            return_pct         double precision,
            max_drawdown_pct   double precision,
            hold_hours         double precision,
            size_fraction      double precision,
            pm_config_version  bigint,
            applied_overrides  jsonb,
            holdout            boolean not null default false,
            batch_id           uuid,
            ingested_at        timestamptz not null default now(),
            ingest_seq         bigint generated always as identity unique
        )
        """
    )
    op.execute("create index trade_outcomes_closed_at on raw.trade_outcomes (closed_at)")

    op.execute(
        """
        create table raw.counterfactuals (
            outcome_id             text primary key,
            could_enter_better_rr  double precision,
            best_entry_delay_bars  integer,
            could_exit_better_rr   double precision,
            best_exit_delay_bars   integer,
            better_entry_ts        double precision,
            better_entry_ox        double precision,
            better_entry_dx        double precision,
            better_entry_edx       double precision,
            better_exit_ts         double precision,
            better_exit_ox         double precision,
            better_exit_dx         double precision,
            better_exit_edx        double precision,
            batch_id               uuid,
            ingested_at            timestamptz not null default now(),
            ingest_seq             bigint generated always as identity unique
        )
        """
    )

    op.execute(
        """
        create table raw.override_telemetry (
            telemetry_id       bigint generated always as identity primary key,
            recorded_at        timestamptz not null default now(),
            position_id        text,
            outcome_id         text,
            pm_config_version  bigint,
            pattern_key        text,
            action_category    text,
            scope              jsonb,
            lesson_id          text,
            override_scope     jsonb,
            levers             jsonb,
            applied            boolean not null,
            holdout            boolean not null default false,
            reason             text
        )
        """
    )
    op.execute(
        "create index override_telemetry_recorded_at on raw.override_telemetry (recorded_at)"
    )

    op.execute(
        """
        create table leverloop.ingest_batches (
            batch_id     uuid primary key,
            source       text not null,
            target       text not null,
            started_at   timestamptz not null default now(),
            finished_at  timestamptz,
            rows_read    bigint not null default 0,
            landed       bigint not null default 0,
            duplicate    bigint not null default 0,
            quarantined  bigint not null default 0
        )
        """
    )

    op.execute(
        """
        create table leverloop.quarantine (
            quarantine_id   bigint generated always as identity primary key,
            batch_id        uuid,
            source          text not null,
            target_table    text not null,
            outcome_id      text,
            reason_code     text not null,
            reason          text not null,
            payload         jsonb not null,
            fingerprint     text not null unique,
            quarantined_at  timestamptz not null default now()
        )
        """
    )
    op.execute("create index quarantine_batch on leverloop.quarantine (batch_id)")
    op.execute("create index quarantine_reason on leverloop.quarantine (reason_code)")

    op.execute(
        """
        create table leverloop.loop_runs (
            run_id             text primary key,
            flow_run_id        text,
            started_at         timestamptz not null default now(),
            finished_at        timestamptz,
            status             text not null,
            as_of              timestamptz,
            evidence_seq       bigint,
            evidence_count     bigint,
            published_version  bigint,
            summary            jsonb,
            error              text
        )
        """
    )

    op.execute(
        """
        create table leverloop.lever_state (
            lesson_id        text not null,
            lever            text not null,
            module           text not null,
            pattern_key      text not null,
            action_category  text not null,
            scope            jsonb not null,
            value            double precision not null,
            target           double precision not null default 0,
            as_of            timestamptz not null,
            updated_run_id   text not null,
            primary key (lesson_id, lever)
        )
        """
    )
    op.execute(
        """
        create table leverloop.lever_state_history (
            history_id       bigint generated always as identity primary key,
            run_id           text not null,
            as_of            timestamptz not null,
            lesson_id        text not null,
            pattern_key      text not null,
            action_category  text not null,
            scope            jsonb not null,
            lever            text not null,
            value_before     double precision,
            value_after      double precision,
            edge             double precision,
            confidence       double precision,
            n                bigint,
            reason           text not null,
            recorded_at      timestamptz not null default now()
        )
        """
    )
    op.execute("create index lever_history_run on leverloop.lever_state_history (run_id)")
    op.execute(
        "create index lever_history_key on leverloop.lever_state_history (lesson_id, lever, as_of)"
    )

    op.execute(
        """
        create table leverloop.pm_config_versions (
            version            bigint primary key,
            content_hash       text not null,
            parent_version     bigint references leverloop.pm_config_versions (version),
            created_at         timestamptz not null default now(),
            created_by_run_id  text,
            payload            jsonb not null,
            gate_report        jsonb,
            diff               jsonb
        )
        """
    )
    op.execute(
        """
        create function leverloop.pm_config_versions_immutable() returns trigger
        language plpgsql as $$
        begin
            raise exception 'pm_config versions are immutable (version %)', old.version;
        end $$
        """
    )
    op.execute(
        """
        create trigger pm_config_versions_immutable
        before update or delete on leverloop.pm_config_versions
        for each row execute function leverloop.pm_config_versions_immutable()
        """
    )
    op.execute(
        """
        create table leverloop.pm_config_current (
            singleton          boolean primary key default true check (singleton),
            version            bigint not null references leverloop.pm_config_versions (version),
            updated_at         timestamptz not null default now(),
            updated_by_run_id  text
        )
        """
    )

    op.execute(
        """
        create table sim.pattern_truth (
            seed                   bigint not null,
            pattern_key            text not null,
            action_category        text not null,
            module                 text not null,
            base_edge              double precision not null,
            focus_dim              text,
            focus_value            text,
            half_life_hours        double precision,
            duplicate_group        text,
            best_entry_delay_bars  integer not null,
            best_exit_delay_bars   integer not null,
            params                 jsonb not null,
            primary key (seed, pattern_key, action_category)
        )
        """
    )
    op.execute(
        """
        create table sim.outcome_truth (
            outcome_id       text primary key,
            seed             bigint not null,
            module           text not null,
            pattern_key      text not null,
            action_category  text not null,
            scope            jsonb not null,
            closed_at        timestamptz not null,
            true_edge        double precision not null,
            expected_rr      double precision not null
        )
        """
    )
    op.execute(
        """
        create table sim.ground_truth (
            seed                   bigint not null,
            pattern_key            text not null,
            action_category        text not null,
            scope                  jsonb not null,
            n                      bigint not null,
            true_edge              double precision not null,
            true_edge_vs_baseline  double precision not null,
            primary key (seed, pattern_key, action_category, scope)
        )
        """
    )
    op.execute(
        """
        create table sim.regime_path (
            seed        bigint not null,
            starts_at   timestamptz not null,
            regime      text not null,
            primary key (seed, starts_at)
        )
        """
    )


def downgrade() -> None:
    op.execute("drop schema if exists sim cascade")
    op.execute("drop table if exists leverloop.pm_config_current")
    op.execute("drop table if exists leverloop.pm_config_versions")
    op.execute("drop function if exists leverloop.pm_config_versions_immutable()")
    for table in (
        "lever_state_history",
        "lever_state",
        "loop_runs",
        "quarantine",
        "ingest_batches",
    ):
        op.execute(f"drop table if exists leverloop.{table}")
    op.execute("drop schema if exists raw cascade")
