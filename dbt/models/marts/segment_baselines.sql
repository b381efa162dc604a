{#- Grain: one row per (module, action_category, scope subset) over the evidence window. -#}
select
    module,
    action_category,
    scope,
    scope_depth,
    n,
    n_eff,
    n_days,
    mean_rr,
    sd_rr * sd_rr as var_rr,
    sd_rr,
    mean_hold_hours,
    {{ as_of() }} as as_of
from {{ ref('int_segment_stats') }}
