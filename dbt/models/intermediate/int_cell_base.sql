{#-
  Grain: (module, pattern_key, action_category, scope subset). Each cell joined to its segment:
  delta vs the baseline and its standard error, before shrinkage. The variance of a thin cell
  is pulled toward its segment's by `variance_prior_n` pseudo-outcomes; the standard error is
  the larger of the iid one and the day-clustered one (outcomes of one day share shocks).
-#}
with cells as (
    select
        c.*,
        s.mean_rr as baseline_rr,
        s.sd_rr as segment_sd_rr,
        s.mean_hold_hours as segment_hold_hours,
        -- a thin cell's variance is pulled toward its segment's
        (c.n_eff * c.sd_rr ^ 2 + {{ var('variance_prior_n') }} * s.sd_rr ^ 2)
            / (c.n_eff + {{ var('variance_prior_n') }}) as var_pooled
    from {{ ref('int_cell_stats') }} c
    join {{ ref('int_segment_stats') }} s
      on s.module = c.module and s.action_category = c.action_category and s.scope = c.scope
),

final as (
    select
        cells.*,
        mean_rr - baseline_rr as delta_rr,
        greatest(
            sqrt(var_pooled / greatest(n_eff, 1)),
            case when n_days >= 2
                 then sqrt(greatest(c_ss - 2 * mean_rr * c_sn + mean_rr * mean_rr * c_nn, 0) / (w_n * w_n)
                           * n_days / (n_days - 1.0))
                 else 0 end,
            1e-9
        ) as se_rr,
        greatest(n_days - 1, 1) as df
    from cells
)

select * from final
