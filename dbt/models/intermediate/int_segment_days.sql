{#- Grain: (module, action_category, scope subset, day): every pattern's outcomes of the segment that day. -#}
select
    module,
    action_category,
    scope,
    scope_depth,
    day,
    max(w) as w,
    sum(n)::bigint as n,
    sum(sum_rr) as sum_rr,
    sum(sum_rr2) as sum_rr2,
    sum(sum_hold_hours) as sum_hold_hours
from {{ ref('int_window_days') }}
group by module, action_category, scope, scope_depth, day
