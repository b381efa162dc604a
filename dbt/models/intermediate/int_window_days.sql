{#-
  Grain: (module, pattern_key, action_category, scope subset, day) for the days of the
  evidence window: the complete days of the lookback before the as_of day, plus the as_of
  day up to as_of. `w` is the day's recency weight.
-#}
with days as (
    select * from {{ ref('int_pattern_daily') }}
    where day < {{ as_of_day() }}
      and day >= {{ as_of_day() }} - interval '{{ var("lookback_days") }} days'
    union all
    select * from {{ ref('int_pattern_asof_day') }}
)

select
    module,
    pattern_key,
    action_category,
    scope,
    scope_depth,
    day,
    n,
    sum_rr,
    sum_rr2,
    sum_hold_hours,
    {%- for f in counterfactual_fields() %}
    n_{{ f }},
    sum_{{ f }},
    {%- endfor %}
    ({{ recency_weight('day') }})::double precision as w
from days
