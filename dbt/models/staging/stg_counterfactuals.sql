select
    outcome_id,
    could_enter_better_rr,
    best_entry_delay_bars,
    could_exit_better_rr,
    best_exit_delay_bars,
    better_entry_ts,
    better_entry_ox,
    better_entry_dx,
    better_entry_edx,
    better_exit_ts,
    better_exit_ox,
    better_exit_dx,
    better_exit_edx,
    ingest_seq,
    xmin as row_xmin
from {{ source('raw', 'counterfactuals') }}
{%- if var('max_counterfactual_seq', none) is not none %}
where ingest_seq <= {{ var('max_counterfactual_seq') }}  -- what this run's input gate validated
{%- endif %}
