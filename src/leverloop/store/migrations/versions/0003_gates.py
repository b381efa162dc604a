"""Gates: data-quality results, the candidate scratch table of the output suite, operator
approvals, and shadow (would-apply) config versions.

(The input suites read per-run snapshots of the new batch, ``leverloop.batch_<table>``, which
each run recreates from the raw table so they always follow its current columns.)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # What the output suite validates: the candidate config's levers and the lever state behind it.
    op.execute(
        """
        create table leverloop.candidate_levers (
            run_id           text not null,
            source           text not null,   -- config | state
            section          text not null,
            pattern_key      text not null,
            action_category  text not null,
            scope            jsonb not null,
            lever            text not null,
            kind             text,            -- null: not in the lever registry
            value            double precision,
            value_before     double precision,
            neutral          double precision,
            low              double precision,
            high             double precision,
            max_step         double precision
        )
        """
    )
    # Every validation a run did (input batches, output candidate), with the failures in words.
    op.execute(
        """
        create table leverloop.gate_results (
            run_id       text not null,
            suite        text not null,
            stage        text not null,       -- input | output
            target       text,
            lo_seq       bigint,
            hi_seq       bigint,
            success      boolean not null,
            blocking     boolean not null,
            statistics   jsonb not null,
            failures     jsonb not null,
            data_docs    text,
            checked_at   timestamptz not null default now(),
            primary key (run_id, suite)
        )
        """
    )
    # Who decided an above-limit change, when and why (approved, rejected, timed out, by policy).
    op.execute(
        """
        create table leverloop.approvals (
            run_id        text primary key,
            flow_run_id   text,
            requested_at  timestamptz not null,
            reasons       jsonb not null,
            decision      text,
            decided_by    text,
            decided_at    timestamptz,
            comment       text
        )
        """
    )
    # Shadow mode publishes "would-apply" versions: stored and diffable, never current.
    op.execute(
        "alter table leverloop.pm_config_versions add column shadow boolean not null default false"
    )


def downgrade() -> None:
    op.execute("alter table leverloop.pm_config_versions drop column if exists shadow")
    for table in ("approvals", "gate_results", "candidate_levers"):
        op.execute(f"drop table if exists leverloop.{table}")
    for table in ("batch_trade_outcomes", "batch_counterfactuals"):
        op.execute(f"drop table if exists leverloop.{table}")
