{#-
  Grain: one row per (pattern_key, action_category, scope subset) of the DM, whose scopes live
  in DM dimension space (curator, chain, mcap_bucket, intent): the evidence for alloc_multiplier.
-#}
select * from {{ ref('int_cell_edges') }}
where module = 'dm'
