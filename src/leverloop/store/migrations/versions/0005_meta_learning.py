"""v5 meta-learning results, one row per pattern per committed run.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25

``leverloop.pattern_halflives`` (5.2) and ``leverloop.pattern_factors`` (5.3) keep every
committed run's fits, keyed by run, so the history of each estimate stays auditable and the
latest run's rows are the ones in force. The 5.1 regime weights append versions to
``leverloop.factor_weights`` (0002); ``n_pairs`` and ``folds`` record what each was fitted on.
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        create table leverloop.pattern_halflives (
            run_id           text not null,
            as_of            timestamptz not null,
            module           text not null,
            pattern_key      text not null,
            action_category  text not null,
            status           text not null check (status in ('fitted', 'persistent', 'no_edge', 'insufficient')),
            half_life_days   double precision,
            ci_low_days      double precision,
            ci_high_days     double precision,
            amplitude        double precision,
            amplitude_z      double precision,
            n_days           integer not null,
            applied_halflife_hours double precision not null,
            persistence      double precision not null,
            primary key (run_id, module, pattern_key, action_category)
        )
        """
    )
    op.execute(
        """
        create table leverloop.pattern_factors (
            run_id           text not null,
            as_of            timestamptz not null,
            module           text not null,
            pattern_key      text not null,
            action_category  text not null,
            factor_id        text not null,
            loading          double precision not null,
            factor_size      integer not null check (factor_size >= 1),
            primary key (run_id, module, pattern_key, action_category)
        )
        """
    )
    op.execute(
        "create index pattern_factors_factor on leverloop.pattern_factors (factor_id, run_id)"
    )
    op.execute("alter table leverloop.factor_weights add column n_pairs integer")
    op.execute("alter table leverloop.factor_weights add column folds integer")


def downgrade() -> None:
    op.execute("alter table leverloop.factor_weights drop column if exists folds")
    op.execute("alter table leverloop.factor_weights drop column if exists n_pairs")
    op.execute("drop table if exists leverloop.pattern_factors")
    op.execute("drop table if exists leverloop.pattern_halflives")
