{#- An index on a clean table's key (issue 13). The marts join on it, the dbt
    relationship tests and GX's reference checks look values up in it, and the
    anomaly monitors join the sources through it: without it SQLite builds a
    throw-away index for every one of those queries (a second each at three
    years of data). Two post-hooks of every stg_<noun> with a key, written by
    `dq sync` (dq.generate): drop, then create, because while dbt replaces a
    table the previous one (renamed aside until the node ends) still holds the
    index's name. Key names are checked identifiers (dq.sources). -#}

{% macro dq_drop_key_index(relation) %}
    {{ return(adapter.dispatch('dq_drop_key_index')(relation)) }}
{% endmacro %}

{% macro default__dq_drop_key_index(relation) -%}
    drop index if exists {{ relation.schema }}.{{ dq_quote('dq_key_' ~ relation.identifier) }}
{%- endmacro %}

{% macro dq_key_index(relation, columns) %}
    {{ return(adapter.dispatch('dq_key_index')(relation, columns)) }}
{% endmacro %}

{#- SQLite names the index in its table's schema and the table without one. -#}
{% macro sqlite__dq_key_index(relation, columns) -%}
    create index {{ relation.schema }}.{{ dq_quote('dq_key_' ~ relation.identifier) }}
    on {{ dq_quote(relation.identifier) }} ({{ columns | join(', ') }})
{%- endmacro %}

{#- PostgreSQL: the index lives in its table's schema. -#}
{% macro default__dq_key_index(relation, columns) -%}
    create index {{ dq_quote('dq_key_' ~ relation.identifier) }}
    on {{ relation }} ({{ columns | join(', ') }})
{%- endmacro %}

{#- Spark tables have no indexes: the hooks render empty and dbt skips them. -#}
{% macro spark__dq_drop_key_index(relation) %}{% endmacro %}

{% macro spark__dq_key_index(relation, columns) %}{% endmacro %}
