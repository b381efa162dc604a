{#- Generic data tests written here because dbt packages cannot be fetched offline. -#}

{% test unique_combination(model, columns) %}
select {{ columns | join(', ') }}, count(*) as occurrences
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}

{% test finite(model, column_name) %}
select {{ column_name }}
from {{ model }}
where {{ column_name }} is not null
  and ({{ column_name }} = 'NaN'::double precision
       or {{ column_name }} in ('Infinity'::double precision, '-Infinity'::double precision))
{% endtest %}

{% test between(model, column_name, min_value, max_value) %}
select {{ column_name }}
from {{ model }}
where {{ column_name }} < {{ min_value }} or {{ column_name }} > {{ max_value }}
{% endtest %}

{#- Several columns at once (one query per model instead of one per column). -#}
{% test no_nulls(model, columns) %}
select * from {{ model }}
where {% for c in columns %}{{ c }} is null{{ ' or ' if not loop.last }}{% endfor %}
{% endtest %}

{% test all_finite(model, columns) %}
select * from {{ model }}
where {% for c in columns -%}
    {{ c }} in ('NaN'::double precision, 'Infinity'::double precision, '-Infinity'::double precision){{ ' or ' if not loop.last }}
{%- endfor %}
{% endtest %}

{% test all_between(model, columns, min_value, max_value) %}
select * from {{ model }}
where {% for c in columns %}({{ c }} < {{ min_value }} or {{ c }} > {{ max_value }}){{ ' or ' if not loop.last }}{% endfor %}
{% endtest %}
