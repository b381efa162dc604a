{#-
  Grain: (module, pattern_key, action_category, scope subset, day) for the as_of day only,
  counting just the outcomes closed at or before as_of. Complete days come from
  int_pattern_daily; this keeps "evidence = outcomes closed <= as_of" exact within the day.
-#}
{{ pattern_day_aggregates("o.closed_at >= (" ~ as_of_day() ~ ") at time zone 'UTC' and o.closed_at <= " ~ as_of()) }}
