{#- Grain: one row per (pattern_key, action_category, scope subset) of the PM, over the evidence window. -#}
select * from {{ ref('int_cell_edges') }}
where module = 'pm'
