{#-
  Grain: (module, pattern_key, action_category, scope subset, day). Additive daily sums of
  R/R, R/R^2, hold hours and the counterfactual fields, for every cell of the scope lattice.

  Incremental, exactly, on the ingestion watermark. Every row records what its build saw: the
  highest ingest_seq of outcomes and counterfactuals, and the transactions still in progress
  (pg_snapshot_xip). A row invisible to that build either has a higher ingest_seq (sequence
  values handed out after the snapshot are higher than every visible one) or was written by
  one of those in-progress transactions. The next build recomputes, whole, every day holding
  such a row: found through the ingest_seq index, plus a scan for the in-progress
  transactions' rows only when there were any. This holds whatever wrote the rows (ingest,
  simulator, a producer's direct INSERT) and however long its transaction ran; whole days are
  recomputed, so the result equals a full refresh.
-#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='day',
    pre_hook="set work_mem = '" ~ var('work_mem') ~ "'",
) }}

{%- if is_incremental() and execute %}
    {%- set previous = run_query(
        "select build_max_seq, build_max_cf_seq, build_xip::text from " ~ this ~ " order by build_xid desc limit 1"
    ) %}
    {%- if previous | length == 0 %}
        {%- set touched_sql = "select distinct closed_day from " ~ ref('stg_trade_outcomes') %}
    {%- else %}
        {%- set row = previous.rows[0] %}
        {%- set xip = row[2] | replace('{', '') | replace('}', '') %}
        {%- set touched_sql %}
            select closed_day from {{ ref('stg_trade_outcomes') }} where ingest_seq > {{ row[0] }}
            union
            select so.closed_day from {{ ref('stg_counterfactuals') }} sc
              join {{ ref('stg_trade_outcomes') }} so on so.outcome_id = sc.outcome_id
             where sc.ingest_seq > {{ row[1] }}
            {%- if xip %}
            union
            select closed_day from {{ ref('stg_trade_outcomes') }}
             where row_xmin::text::bigint in (select x % 4294967296 from unnest('{ {{- xip -}} }'::bigint[]) x)
            union
            select so.closed_day from {{ ref('stg_counterfactuals') }} sc
              join {{ ref('stg_trade_outcomes') }} so on so.outcome_id = sc.outcome_id
             where sc.row_xmin::text::bigint in (select x % 4294967296 from unnest('{ {{- xip -}} }'::bigint[]) x)
            {%- endif %}
        {%- endset %}
    {%- endif %}
    {%- set days = run_query(touched_sql) %}
    {%- set ranges = [] %}
    {%- for d in days.rows %}
        {%- do ranges.append(
            "(o.closed_at >= '" ~ d[0] ~ "+00'::timestamptz and o.closed_at < '" ~ d[0] ~ "+00'::timestamptz + interval '1 day')"
        ) %}
    {%- endfor %}
    {{ pattern_day_aggregates(ranges | join(' or ') if ranges else 'false') }}
{%- else %}
    {{ pattern_day_aggregates('true') }}
{%- endif %}
