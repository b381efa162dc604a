{#-
  Typed outcomes with every configured scope dimension in its own column. Rows that break
  the input contract are moved to quarantine before dbt runs; the filter below is a last
  line of defence so that nothing non-finite or malformed can reach the marts.
-#}
select
    outcome_id,
    position_id,
    module,
    pattern_key,
    action_category,
    scope,
    {%- for d in all_scope_dimensions() %}
    scope ->> '{{ d }}' as {{ scope_column(d) }},
    {%- endfor %}
    opened_at,
    closed_at,
    date_trunc('day', closed_at at time zone 'UTC') as closed_day,
    rr,
    return_pct,
    max_drawdown_pct,
    greatest(coalesce(hold_hours, extract(epoch from closed_at - opened_at)::double precision / 3600.0), 0) as hold_hours,
    size_fraction,
    pm_config_version,
    applied_overrides,
    holdout,
    ingest_seq,
    ingested_at,
    xmin as row_xmin  -- the writing transaction: the incremental models' watermark
from {{ source('raw', 'trade_outcomes') }}
where module in ('pm', 'dm')
  and action_category in ('entry', 'add', 'trim', 'exit')
  and pattern_key is not null
  and jsonb_typeof(scope) = 'object'
  and closed_at is not null and opened_at is not null and closed_at >= opened_at
  and rr between {{ var('rr_min', -20) }} and {{ var('rr_max', 100) }}
  {%- if var('max_outcome_seq', none) is not none %}
  and ingest_seq <= {{ var('max_outcome_seq') }}  -- what this run's input gate validated
  {%- endif %}
