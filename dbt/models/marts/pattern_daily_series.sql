{#-
  Grain: one row per (module, pattern_key, action_category, scope, day) for the root scope and
  the single-regime scopes, over the `meta_history_days` days up to as_of: each pattern's
  daily R/R sums next to its segment's. The v5 meta-learning reads it: daily edge series for
  the half-life fits (5.2) and the latent-factor grouping (5.3), weekly windows per regime for
  the factor-weight refits (5.1). Daily rows are independent observations, unlike consecutive
  edge_history snapshots, whose windows overlap.
-#}
with days as (
    select *
    from {{ ref('int_pattern_daily') }}
    where day < {{ as_of_day() }}
      and day >= {{ as_of_day() }} - interval '{{ var("meta_history_days") }} days'
      and (scope_depth = 0 or (scope_depth = 1 and scope ? 'regime'))
),

segments as (
    select module, action_category, scope, day,
           sum(n)::bigint as segment_n, sum(sum_rr) as segment_sum_rr, sum(sum_rr2) as segment_sum_rr2,
           sum(sum_hold_hours) as segment_sum_hold_hours
    from days
    group by module, action_category, scope, day
)

select
    d.module,
    d.pattern_key,
    d.action_category,
    d.scope,
    coalesce(d.scope ->> 'regime', '*') as regime,
    d.day,
    d.n,
    d.sum_rr,
    d.sum_rr2,
    d.sum_hold_hours,
    s.segment_n,
    s.segment_sum_rr,
    s.segment_sum_rr2,
    s.segment_sum_hold_hours,
    {{ as_of() }} as as_of
from days d
join segments s
  on s.module = d.module and s.action_category = d.action_category and s.scope = d.scope and s.day = d.day
