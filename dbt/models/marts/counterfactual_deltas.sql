{#-
  Grain: one row per (module, pattern_key, action_category, scope subset) with counterfactuals.
  What better timing would have earned (recency-weighted means over the window), the typical
  best delays, and the signal readings at the better entry and exit points.
-#}
select
    module,
    pattern_key,
    action_category,
    scope,
    scope_depth,
    n_counterfactuals,
    mean_could_enter_better_rr as missed_entry_rr,
    mean_best_entry_delay_bars as mean_entry_delay_bars,
    round(mean_best_entry_delay_bars)::int as typical_entry_delay_bars,
    mean_could_exit_better_rr as missed_exit_rr,
    mean_best_exit_delay_bars as mean_exit_delay_bars,
    round(mean_best_exit_delay_bars)::int as typical_exit_delay_bars,
    mean_better_entry_ts as better_entry_ts,
    mean_better_entry_ox as better_entry_ox,
    mean_better_entry_dx as better_entry_dx,
    mean_better_entry_edx as better_entry_edx,
    mean_better_exit_ts as better_exit_ts,
    mean_better_exit_ox as better_exit_ox,
    mean_better_exit_dx as better_exit_dx,
    mean_better_exit_edx as better_exit_edx,
    mean_hold_hours,
    as_of
from {{ ref('int_cell_edges') }}
where n_counterfactuals > 0
