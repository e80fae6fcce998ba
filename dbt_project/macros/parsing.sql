{#- Portable parsing helpers. Raw tables hold text exactly as received; these
    macros answer "is this text a valid X?" and "give me X" with one
    implementation per database, chosen by adapter.dispatch. -#}

{#- True when the trimmed text is a whole number, optionally negative. -#}
{% macro is_integer_text(expr) -%}
    {{ return(adapter.dispatch('is_integer_text')(expr)) }}
{%- endmacro %}

{% macro default__is_integer_text(expr) -%}
    (trim({{ expr }}) ~ '^-?[0-9]+$')
{%- endmacro %}

{% macro sqlite__is_integer_text(expr) -%}
    (
        ltrim(trim({{ expr }}), '-') <> ''
        and ltrim(trim({{ expr }}), '-') not glob '*[^0-9]*'
        and trim({{ expr }}) not glob '?*-*'
    )
{%- endmacro %}

{#- True when the trimmed text is a decimal number such as 0.0625 or -3. -#}
{% macro is_decimal_text(expr) -%}
    {{ return(adapter.dispatch('is_decimal_text')(expr)) }}
{%- endmacro %}

{% macro default__is_decimal_text(expr) -%}
    (trim({{ expr }}) ~ '^-?([0-9]+([.][0-9]*)?|[.][0-9]+)$')
{%- endmacro %}

{% macro sqlite__is_decimal_text(expr) -%}
    (
        {{ sqlite__is_integer_text("replace(" ~ expr ~ ", '.', '')") }}
        and length(trim({{ expr }})) - length(replace(trim({{ expr }}), '.', '')) <= 1
        and trim({{ expr }}) not in ('.', '-.')
    )
{%- endmacro %}

{#- An ISO-8601 timestamp text ('2018-09-01T12:55:00' or with a space) as a
    canonical 'YYYY-MM-DD HH:MM:SS' timestamp; null when it does not parse. -#}
{% macro parse_timestamp(expr) -%}
    {{ return(adapter.dispatch('parse_timestamp')(expr)) }}
{%- endmacro %}

{% macro default__parse_timestamp(expr) -%}
    case
        when trim({{ expr }}) ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]+)?)?)?$'
            then cast(replace(trim({{ expr }}), 'T', ' ') as timestamp)
    end
{%- endmacro %}

{% macro sqlite__parse_timestamp(expr) -%}
    {#- datetime() alone accepts '2018-02-31' and normalises it; requiring the
        date part to survive the round trip rejects impossible dates. -#}
    cast(
        case
            when date(trim({{ expr }}), '+0 days') = substr(trim({{ expr }}), 1, 10)
                then datetime(trim({{ expr }}))
        end
        as text
    )
{%- endmacro %}

{#- Amounts arrive as integer cents; marts show currency units. -#}
{% macro cents_to_currency(expr) -%}
    {{ return(adapter.dispatch('cents_to_currency')(expr)) }}
{%- endmacro %}

{% macro default__cents_to_currency(expr) -%}
    cast(cast({{ expr }} as numeric(16, 2)) / 100 as numeric(16, 2))
{%- endmacro %}

{% macro sqlite__cents_to_currency(expr) -%}
    cast(round(cast({{ expr }} as integer) / 100.0, 2) as real)
{%- endmacro %}

{#- A decimal text as a number. -#}
{% macro to_decimal(expr) -%}
    {{ return(adapter.dispatch('to_decimal')(expr)) }}
{%- endmacro %}

{% macro default__to_decimal(expr) -%}
    cast(trim({{ expr }}) as numeric(18, 6))
{%- endmacro %}

{% macro sqlite__to_decimal(expr) -%}
    cast(trim({{ expr }}) as real)
{%- endmacro %}
