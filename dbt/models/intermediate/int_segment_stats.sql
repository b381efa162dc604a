{#- Grain: (module, action_category, scope subset). Recency-weighted statistics of the whole segment. -#}
with sums as (
    select
        module, action_category, scope, scope_depth,
        {{ window_sums() }}
    from {{ ref('int_segment_days') }}
    group by module, action_category, scope, scope_depth
)

select
    sums.*,
    w_n * w_n / nullif(w2_n, 0) as n_eff,
    sqrt(greatest(mean_rr2 - mean_rr * mean_rr, 0)) as sd_rr
from sums
