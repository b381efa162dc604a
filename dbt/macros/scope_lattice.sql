{#-
  The scope lattice as GROUPING SETS. For dimensions D and depth k, every subset S of D with
  |S| <= k becomes one grouping set (keys + S). One pass of the data aggregates every cell.
-#}

{% macro scope_column(dim) -%}scope_{{ dim | lower }}{%- endmacro %}

{% macro scope_subsets(dims, depth) -%}
    {%- set subsets = [[]] -%}
    {%- for dim in dims -%}
        {%- for s in subsets[:] -%}
            {%- if s | length < depth -%}{%- do subsets.append(s + [dim]) -%}{%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(subsets) }}
{%- endmacro %}

{% macro scope_grouping_sets(keys, dims, depth) -%}
    grouping sets (
    {%- for s in scope_subsets(dims, depth) %}
        {%- set cols = keys[:] -%}
        {%- for d in s -%}{%- do cols.append(scope_column(d)) -%}{%- endfor %}
        ({{ cols | join(', ') }}){{ ',' if not loop.last }}
    {%- endfor %}
    )
{%- endmacro %}

{#- The cell's scope as jsonb: only the dimensions grouped on in this grouping set. -#}
{% macro scope_object(dims) -%}
    jsonb_strip_nulls(jsonb_build_object(
    {%- for d in dims %}
        '{{ d }}', case when grouping({{ scope_column(d) }}) = 0 then {{ scope_column(d) }} end{{ ',' if not loop.last }}
    {%- endfor %}
    ))
{%- endmacro %}

{#- Drop cells that group on a dimension the outcome does not carry (NULL value). -#}
{% macro scope_complete(dims) -%}
    not (
    {%- for d in dims %}
        (grouping({{ scope_column(d) }}) = 0 and {{ scope_column(d) }} is null){{ ' or' if not loop.last }}
    {%- endfor %}
    )
{%- endmacro %}

{% macro scope_depth(dims) -%}
    (
    {%- for d in dims %}
        (1 - grouping({{ scope_column(d) }})){{ ' +' if not loop.last }}
    {%- endfor %}
    )
{%- endmacro %}

{#- Every scope dimension either module uses, once. -#}
{% macro all_scope_dimensions() -%}
    {%- set seen = [] -%}
    {%- for d in var('pm_scope_dimensions') + var('dm_scope_dimensions') -%}
        {%- if d not in seen -%}{%- do seen.append(d) -%}{%- endif -%}
    {%- endfor -%}
    {{ return(seen) }}
{%- endmacro %}

{% macro as_of() -%}
    {%- if var('as_of') -%}cast('{{ var("as_of") }}' as timestamptz){%- else -%}now(){%- endif -%}
{%- endmacro %}

{% macro in_lookback(column) -%}
    ({{ column }} <= {{ as_of() }} and {{ column }} > {{ as_of() }} - interval '{{ var("lookback_days") }} days')
{%- endmacro %}
