{#- One schema (one SQLite file) holds seeds, staging and marts, so that the
    build warehouse is a single file that publish can copy atomically. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ target.schema }}
{%- endmacro %}
