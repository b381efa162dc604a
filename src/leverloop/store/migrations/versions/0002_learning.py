"""Learning state: factor weights (v5.1 writes them, dbt reads them) and the lesson lifecycle.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

``leverloop.factor_weights`` starts with version 0: the documented default weights of the
edge factors (coherence, time efficiency, recurrence, variance) for every action category
and all regimes (``regime = '*'``). The v5.1 refit appends higher versions; the dbt edge
model reads the newest version per (regime, action_category, factor).
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

DEFAULT_WEIGHTS = {"coherence": 0.30, "time_efficiency": 0.15, "recurrence": 0.10, "variance": 0.15}


def upgrade() -> None:
    op.execute(
        """
        create table leverloop.factor_weights (
            version          integer not null,
            regime           text not null,
            action_category  text not null,
            factor           text not null check (factor in ('coherence', 'time_efficiency', 'recurrence', 'variance')),
            weight           double precision not null,
            confidence       double precision not null default 0 check (confidence between 0 and 1),
            method           text not null,
            fitted_at        timestamptz not null default now(),
            run_id           text,
            primary key (version, regime, action_category, factor)
        )
        """
    )
    values = ", ".join(
        f"(0, '*', '{category}', '{factor}', {weight}, 0, 'documented default')"
        for category in ("entry", "add", "trim", "exit")
        for factor, weight in DEFAULT_WEIGHTS.items()
    )
    op.execute(
        f"insert into leverloop.factor_weights (version, regime, action_category, factor, weight, confidence, method) values {values}"
    )

    op.execute(
        """
        create table leverloop.lessons (
            lesson_id             text primary key,
            module                text not null,
            pattern_key           text not null,
            action_category       text not null,
            scope                 jsonb not null,
            status                text not null check (status in ('candidate', 'active', 'decaying', 'disabled')),
            strength              double precision not null default 0,
            decay_halflife_hours  double precision not null,
            reason                text not null,
            disabled_by           text check (disabled_by in ('decay', 'monitor', 'operator')),
            first_seen_at         timestamptz not null,
            status_since          timestamptz not null,
            last_evidence_at      timestamptz,
            updated_run_id        text not null,
            unique (module, pattern_key, action_category, scope)
        )
        """
    )
    op.execute(
        """
        create table leverloop.lesson_events (
            event_id     bigint generated always as identity primary key,
            lesson_id    text not null,
            run_id       text not null,
            as_of        timestamptz not null,
            from_status  text,
            to_status    text not null,
            reason       text not null,
            evidence     jsonb,
            recorded_at  timestamptz not null default now()
        )
        """
    )
    op.execute("create index lesson_events_lesson on leverloop.lesson_events (lesson_id, as_of)")


def downgrade() -> None:
    op.execute("drop table if exists leverloop.lesson_events")
    op.execute("drop table if exists leverloop.lessons")
    op.execute("drop table if exists leverloop.factor_weights")
