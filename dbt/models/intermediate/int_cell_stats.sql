{#-
  Grain: (module, pattern_key, action_category, scope subset). Recency-weighted statistics of
  each cell over the evidence window, how consistently its days beat the segment's days (for
  coherence), and the counterfactual means.
-#}
with days as (
    select
        d.*,
        s.sum_rr / s.n as segment_day_mean
    from {{ ref('int_window_days') }} d
    join {{ ref('int_segment_days') }} s
      on s.module = d.module and s.action_category = d.action_category and s.scope = d.scope and s.day = d.day
),

sums as (
    select
        module, pattern_key, action_category, scope, scope_depth,
        {{ window_sums() }},
        {%- for f in counterfactual_fields() %}
        sum(w * sum_{{ f }}) / nullif(sum(w * n_{{ f }}), 0) as mean_{{ f }},
        {%- endfor %}
        sum(n_could_enter_better_rr)::bigint as n_counterfactuals,
        coalesce(sum(w) filter (where sum_rr / n > segment_day_mean), 0) as w_days_above,
        coalesce(sum(w) filter (where sum_rr / n < segment_day_mean), 0) as w_days_below
    from days
    group by module, pattern_key, action_category, scope, scope_depth
)

select
    sums.*,
    w_n * w_n / nullif(w2_n, 0) as n_eff,
    sqrt(greatest(mean_rr2 - mean_rr * mean_rr, 0)) as sd_rr
from sums
