{#- Quarantine helpers shared by the checked_* staging models.

    `flag_duplicates` numbers the copies of each identical raw row and counts
    the distinct versions per key, so that a checked model can keep the first
    copy of an exact duplicate, reject the other copies, and reject every
    version of a key that arrives with conflicting values. -#}
{% macro flag_duplicates(relation, key_columns, all_columns) -%}
    select
        *,
        cast(
            row_number() over (
                partition by {{ all_columns | join(', ') }}
                order by {{ all_columns | join(', ') }}
            )
            as {{ dbt.type_int() }}
        ) as copy_number
    from {{ relation }}
{%- endmacro %}

{#- Count, per trimmed key, the distinct versions (first copies only). -#}
{% macro key_versions(cte, key_columns) -%}
    count(case when {{ cte }}.copy_number = 1 then 1 end) over (
        partition by
        {%- for column in key_columns %}
            trim({{ cte }}.{{ column }}){{ "," if not loop.last }}
        {%- endfor %}
    )
{%- endmacro %}

{#- First failing rule wins; null means the row is clean. `rules` is a list of
    (condition, reason) pairs, checked in order. -#}
{% macro reject_reason(rules) -%}
    cast(
        case
            {%- for condition, reason in rules %}
            when {{ condition }} then '{{ reason }}'
            {%- endfor %}
        end
        as {{ dbt.type_string() }}
    )
{%- endmacro %}

{#- Blank means null, empty or only white space. -#}
{% macro is_blank(expr) -%}
    (trim(coalesce({{ expr }}, '')) = '')
{%- endmacro %}
