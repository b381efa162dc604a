{#-
  Grain: (module, pattern_key, action_category, scope subset). The edge of each cell, per
  ARCHITECTURE.md section 4:

  delta_rr     recency-weighted mean R/R minus the segment baseline (same module, category, scope)
  se_rr        max(iid, day-clustered) standard error; the variance of a thin cell is pulled
               toward its segment's by `variance_prior_n` pseudo-outcomes
  t_stat, df, p_value   significance of delta_rr (df = days - 1), for FDR control across the lattice
  edge_shrunk  empirical-Bayes shrinkage toward the parent scope: depth-0 cells toward 0, a
               depth-d cell toward the precision-weighted mean of its depth-(d-1) parents, by
               tau^2 / (tau^2 + se^2), with tau^2 the between-cell variance (DerSimonian-Laird
               moment estimate: across patterns at the root, within each pattern below it)
  confidence   n_eff / (n_eff + confidence_k), in [0, 1]
  factors      z in [-1, 1]: coherence (days beating the segment in the edge's direction),
               time efficiency (segment hold / pattern hold), recurrence (share of days active),
               variance (segment sd / pattern sd)
  edge_raw     edge_shrunk * confidence * exp(sum_f w_f z_f)     global weights
  edge_raw_regime                                                regime weights (v5.1) when the
               scope names a regime and weights exist for it; otherwise the global ones
  edge_sd      posterior sd of edge_raw_regime (the shrinkage's posterior variance, scaled alike)
-#}
{#- The shrinkage chain joins small CTE aggregates whose row estimates are poor (1 row);
    nested loops over thousands of jsonb keys are the planner's worst choice here. -#}
{{ config(pre_hook="set local enable_nestloop = off") }}
{%- set depth = var('scope_max_depth') %}
{%- set factors = ['coherence', 'time_efficiency', 'recurrence', 'variance'] %}

with base as (
    select * from {{ ref('int_cell_base') }}
),

{%- for d in range(depth + 1) %}
{%- if d == 0 %}
prior_0 as (
    select module, pattern_key, action_category, scope, 0::double precision as prior_rr
    from base where scope_depth = 0
),
{%- else %}
prior_{{ d }} as (
    select
        c.module, c.pattern_key, c.action_category, c.scope,
        sum(p.edge_shrunk / p.post_var) / sum(1 / p.post_var) as prior_rr
    from base c
    cross join lateral jsonb_object_keys(c.scope) as k (key)
    join post_{{ d - 1 }} p
      on p.module = c.module and p.pattern_key = c.pattern_key
     and p.action_category = c.action_category and p.scope = c.scope - k.key
    where c.scope_depth = {{ d }}
    group by c.module, c.pattern_key, c.action_category, c.scope
),
{%- endif %}
tau_{{ d }} as (
    -- DerSimonian-Laird with a known zero mean: E[sum w x^2] = k + tau2 * sum w, w = 1/se^2,
    -- x = delta - prior. At the root, across the module's patterns; below it, within each
    -- (pattern, category): some patterns are scope-sensitive (their children really differ),
    -- most are not, and one pooled tau2 would flatten the few that are.
    select
        b.module,
        {{ 'null::text as pattern_key, null::text as action_category,' if d == 0 else 'b.pattern_key, b.action_category,' }}
        greatest({{ var('shrinkage_min_tau2') }},
                 (sum((b.delta_rr - p.prior_rr) ^ 2 / b.se_rr ^ 2) - count(*)) / sum(1 / b.se_rr ^ 2)) as tau2
    from base b
    join prior_{{ d }} p using (module, pattern_key, action_category, scope)
    where b.scope_depth = {{ d }}
    group by b.module{{ ', b.pattern_key, b.action_category' if d > 0 }}
),
post_{{ d }} as (
    select
        b.*,
        coalesce(p.prior_rr, 0) as prior_rr,
        coalesce(t.tau2, {{ var('shrinkage_min_tau2') }}) as tau2,
        coalesce(p.prior_rr, 0) + (b.delta_rr - coalesce(p.prior_rr, 0))
            * coalesce(t.tau2, {{ var('shrinkage_min_tau2') }})
            / (coalesce(t.tau2, {{ var('shrinkage_min_tau2') }}) + b.se_rr ^ 2) as edge_shrunk,
        coalesce(t.tau2, {{ var('shrinkage_min_tau2') }}) * b.se_rr ^ 2
            / (coalesce(t.tau2, {{ var('shrinkage_min_tau2') }}) + b.se_rr ^ 2) as post_var
    from base b
    left join prior_{{ d }} p using (module, pattern_key, action_category, scope)
    left join tau_{{ d }} t
      on t.module = b.module
     {%- if d > 0 %} and t.pattern_key = b.pattern_key and t.action_category = b.action_category{% endif %}
    where b.scope_depth = {{ d }}
),
{%- endfor %}

shrunk as (
    {%- for d in range(depth + 1) %}
    select * from post_{{ d }}{{ ' union all' if not loop.last }}
    {%- endfor %}
),

weights as (
    select
        regime,
        action_category,
        {%- for f in factors %}
        max(weight) filter (where factor = '{{ f }}') as w_{{ f }},
        {%- endfor %}
        min(confidence) as confidence
    from {{ ref('stg_factor_weights') }}
    group by regime, action_category
),

scored as (
    select
        s.*,
        case
            when s.delta_rr > 0 then s.w_days_above / nullif(s.w_days_above + s.w_days_below, 0)
            when s.delta_rr < 0 then s.w_days_below / nullif(s.w_days_above + s.w_days_below, 0)
        end as coherence_raw,
        ln(greatest(s.segment_hold_hours, 1e-6) / greatest(s.mean_hold_hours, 1e-6)) as time_efficiency,
        least(1.0, s.n_days / {{ var('lookback_days') }}.0)::double precision as recurrence,
        ln(greatest(s.segment_sd_rr, 1e-6) / greatest(s.sd_rr, 1e-6)) as variance_ratio
    from shrunk s
),

z as (
    select
        scored.*,
        coalesce(coherence_raw, 0.5) as coherence,
        2 * coalesce(coherence_raw, 0.5) - 1 as z_coherence,
        tanh(time_efficiency) as z_time_efficiency,
        2 * recurrence - 1 as z_recurrence,
        tanh(variance_ratio) as z_variance
    from scored
),

multiplied as (
    select
        z.*,
        least({{ var('factor_multiplier_max') }}, greatest({{ var('factor_multiplier_min') }}, exp(
            {%- for f in factors %}
            coalesce(g.w_{{ f }}, 0) * z.z_{{ f }}{{ ' +' if not loop.last }}
            {%- endfor %}
        ))) as factor_multiplier,
        least({{ var('factor_multiplier_max') }}, greatest({{ var('factor_multiplier_min') }}, exp(
            {%- for f in factors %}
            coalesce(r.w_{{ f }}, g.w_{{ f }}, 0) * z.z_{{ f }}{{ ' +' if not loop.last }}
            {%- endfor %}
        ))) as regime_factor_multiplier,
        coalesce(r.confidence, g.confidence, 0) as weights_confidence
    from z
    left join weights g on g.regime = '*' and g.action_category = z.action_category
    left join weights r on r.regime = z.scope ->> 'regime' and r.action_category = z.action_category
)

select
    module,
    pattern_key,
    action_category,
    scope,
    scope_depth,
    n,
    n_eff,
    n_days,
    mean_rr,
    sd_rr,
    baseline_rr,
    delta_rr,
    se_rr,
    delta_rr / se_rr as t_stat,
    df,
    {{ t_p_value('delta_rr / se_rr', 'df') }} as p_value,
    prior_rr,
    (delta_rr - prior_rr) / se_rr as t_vs_parent,
    tau2,
    edge_shrunk,
    n_eff / (n_eff + {{ var('confidence_k') }}) as confidence,
    coherence,
    time_efficiency,
    recurrence,
    variance_ratio,
    factor_multiplier,
    regime_factor_multiplier / factor_multiplier as regime_multiplier,
    weights_confidence,
    edge_shrunk * (n_eff / (n_eff + {{ var('confidence_k') }})) * factor_multiplier as edge_raw,
    edge_shrunk * (n_eff / (n_eff + {{ var('confidence_k') }})) * regime_factor_multiplier as edge_raw_regime,
    -- posterior sd of edge_raw_regime: how far the edge could be from what was measured
    sqrt(post_var) * (n_eff / (n_eff + {{ var('confidence_k') }})) * regime_factor_multiplier as edge_sd,
    mean_hold_hours,
    {%- for f in counterfactual_fields() %}
    mean_{{ f }},
    {%- endfor %}
    n_counterfactuals,
    {{ as_of() }} as as_of
from multiplied
