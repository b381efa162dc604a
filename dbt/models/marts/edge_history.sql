{#-
  Grain: one row per (as_of, module, pattern_key, action_category, scope subset) with n >= 10:
  a snapshot of the edges at every loop run, for the v5.2 half-life fits. Never rebuilt by
  --full-refresh (the history cannot be recomputed once outcomes age out of raw retention).
-#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='as_of',
    full_refresh=false,
) }}

select
    as_of,
    {{ "'" ~ var('run_id') ~ "'" if var('run_id') else 'null' }}::text as run_id,
    module,
    pattern_key,
    action_category,
    scope,
    scope_depth,
    n,
    n_eff,
    n_days,
    mean_rr,
    delta_rr,
    se_rr,
    t_stat,
    edge_shrunk,
    confidence,
    edge_raw,
    edge_raw_regime
from {{ ref('int_cell_edges') }}
where n >= 10
