{#-
  The factor weights in force: the v5.1 refit appends versions (version 0 = documented
  defaults). Per-regime weights come from the newest version only, so a regime whose data
  thinned out since an older refit falls back to the global weights instead of keeping stale
  ones; the all-regime ('*') weights are the newest each action category has.
-#}
with newest as (
    select max(version) as version from {{ source('leverloop', 'factor_weights') }}
)

select distinct on (regime, action_category, factor)
    regime,
    action_category,
    factor,
    weight,
    confidence,
    version
from {{ source('leverloop', 'factor_weights') }}
where regime = '*' or version = (select version from newest)
order by regime, action_category, factor, version desc
