{#-
  Per (module, pattern_key, action_category, scope subset, day): the additive sums every
  downstream statistic is computed from. One GROUPING SETS pass per module covers the whole
  scope lattice. `outcome_filter` restricts the outcomes (days to recompute, or the partial
  as_of day).
-#}

{% macro counterfactual_fields() -%}
    {{ return(['could_enter_better_rr', 'best_entry_delay_bars', 'could_exit_better_rr', 'best_exit_delay_bars',
               'better_entry_ts', 'better_entry_ox', 'better_entry_dx', 'better_entry_edx',
               'better_exit_ts', 'better_exit_ox', 'better_exit_dx', 'better_exit_edx']) }}
{%- endmacro %}

{% macro pattern_day_aggregates(outcome_filter) -%}
{%- set depth = var('scope_max_depth') -%}
{%- set modules = [('pm', var('pm_scope_dimensions')), ('dm', var('dm_scope_dimensions'))] -%}
with outcomes as (
    select
        o.*,
        {%- for f in counterfactual_fields() %}
        c.{{ f }}{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ ref('stg_trade_outcomes') }} o
    left join {{ ref('stg_counterfactuals') }} c on c.outcome_id = o.outcome_id
    where {{ outcome_filter }}
)
{%- for module, dims in modules %}
select
    '{{ module }}'::text as module,
    pattern_key,
    action_category,
    {{ scope_object(dims) }} as scope,
    {{ scope_depth(dims) }}::int as scope_depth,
    closed_day as day,
    count(*)::bigint as n,
    sum(rr) as sum_rr,
    sum(rr * rr) as sum_rr2,
    sum(hold_hours) as sum_hold_hours,
    {%- for f in counterfactual_fields() %}
    count({{ f }})::bigint as n_{{ f }},
    coalesce(sum({{ f }}), 0)::double precision as sum_{{ f }},
    {%- endfor %}
    -- what this build saw (see int_pattern_daily's incremental rule)
    pg_current_xact_id()::text::bigint as build_xid,
    (select coalesce(max(ingest_seq), 0) from {{ ref('stg_trade_outcomes') }}) as build_max_seq,
    (select coalesce(max(ingest_seq), 0) from {{ ref('stg_counterfactuals') }}) as build_max_cf_seq,
    array(select pg_snapshot_xip(pg_current_snapshot())::text::bigint) as build_xip
from outcomes
where module = '{{ module }}'
group by {{ scope_grouping_sets(['pattern_key', 'action_category', 'closed_day'], dims, depth) }}
having {{ scope_complete(dims) }}
{{ 'union all' if not loop.last }}
{%- endfor %}
{%- endmacro %}

{#- Recency weight of a day bucket: halves every recency_halflife_days, by the bucket's mid-point age. -#}
{% macro recency_weight(day_column) -%}
    power(0.5, greatest(extract(epoch from ({{ as_of() }} at time zone 'UTC') - ({{ day_column }} + interval '12 hours')) / 86400.0, 0)
               / {{ var('recency_halflife_days') }})
{%- endmacro %}

{% macro as_of_day() -%}
    date_trunc('day', {{ as_of() }} at time zone 'UTC')
{%- endmacro %}

{#-
  Two-sided p-value of a Student t statistic with `df` degrees of freedom. Exact for df = 1
  (Cauchy) and df = 2; for df >= 3 Wallace's normal approximation
  z = (8 df + 1) / (8 df + 3) * sqrt(df ln(1 + t^2 / df)), then p = erfc(z / sqrt 2) by
  Abramowitz & Stegun 7.1.26. Absolute error below 0.002 (tests compare with scipy).
-#}
{% macro t_p_value(t, df) -%}
    {%- set z = "((8.0 * " ~ df ~ " + 1) / (8.0 * " ~ df ~ " + 3) * sqrt(" ~ df ~ " * ln(1 + (" ~ t ~ ") ^ 2 / " ~ df ~ ")))" -%}
    {%- set x = "(" ~ z ~ " / sqrt(2.0))" -%}
    {%- set k = "(1 / (1 + 0.3275911 * " ~ x ~ "))" -%}
    least(1.0, greatest(0.0, case
        when {{ df }} <= 1 then 1 - 2 / pi() * atan(abs({{ t }}))
        when {{ df }} = 2 then 1 - abs({{ t }}) / sqrt(({{ t }}) ^ 2 + 2)
        else {{ k }} * exp(-({{ x }} ^ 2)) * (0.254829592 + {{ k }} * (-0.284496736 + {{ k }} * (1.421413741
             + {{ k }} * (-1.453152027 + {{ k }} * 1.061405429))))
    end))
{%- endmacro %}

{#-
  Recency-weighted window statistics over day rows (columns n, sum_rr, sum_rr2,
  sum_hold_hours, w). Every outcome of day d weighs w_d. The c_* sums feed a
  day-clustered standard error: outcomes of one day share shocks, so they are not
  independent evidence.
-#}
{% macro window_sums() -%}
    sum(n)::bigint as n,
    count(*)::int as n_days,
    sum(w * n) as w_n,
    sum(w * w * n) as w2_n,
    sum(w * sum_rr) / nullif(sum(w * n), 0) as mean_rr,
    sum(w * sum_rr2) / nullif(sum(w * n), 0) as mean_rr2,
    sum(w * w * sum_rr * sum_rr) as c_ss,
    sum(w * w * sum_rr * n) as c_sn,
    sum(w * w * n * n) as c_nn,
    sum(w * sum_hold_hours) / nullif(sum(w * n), 0) as mean_hold_hours
{%- endmacro %}
