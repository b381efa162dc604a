"""Runtime monitoring: the measured effect of each override against the holdout, per run.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25

``leverloop.override_effects`` keeps the history of every monitoring run (one row per
override measured); the lever engine reads the latest verdict per ``lesson_id``.
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        create table leverloop.override_effects (
            effect_id        bigint generated always as identity primary key,
            run_id           text not null,
            as_of            timestamptz not null,
            lesson_id        text not null,
            module           text not null,
            pattern_key      text not null,
            action_category  text not null,
            scope            jsonb not null,
            n_applied        bigint not null,
            n_holdout        bigint not null,
            mean_applied     double precision,
            mean_holdout     double precision,
            effect           double precision,
            ci_low           double precision,
            ci_high          double precision,
            ci_level         double precision,
            verdict          text not null check (verdict in ('keep', 'decay_faster', 'disable')),
            reason           text not null,
            recorded_at      timestamptz not null default now()
        )
        """
    )
    op.execute(
        "create index override_effects_latest on leverloop.override_effects "
        "(lesson_id, as_of desc, effect_id desc)"
    )
    op.execute("create index override_effects_run on leverloop.override_effects (run_id)")


def downgrade() -> None:
    op.execute("drop table if exists leverloop.override_effects")
