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
    {#- Text like SQLite's, so every target's staging has the same types and
        values; an impossible date ('2018-02-31') is null, as on SQLite. -#}
    case
        when trim({{ expr }}) ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]+)?)?)?$'
            and {{ dq_is_real_date('substr(trim(' ~ expr ~ '), 1, 10)') }}
            then to_char(
                cast(replace(trim({{ expr }}), 'T', ' ') as timestamp),
                'YYYY-MM-DD HH24:MI:SS'
            )
    end
{%- endmacro %}

{#- True when a 'YYYY-MM-DD' text is a date that exists (PostgreSQL raises on
    '2018-02-31' instead of returning null: check day against the month). -#}
{% macro dq_is_real_date(expr) -%}
    (
        cast(substr({{ expr }}, 6, 2) as integer) between 1 and 12
        and cast(substr({{ expr }}, 9, 2) as integer) between 1 and cast(extract(day from (
            make_date(cast(substr({{ expr }}, 1, 4) as integer), cast(substr({{ expr }}, 6, 2) as integer), 1)
            + interval '1 month' - interval '1 day'
        )) as integer)
        and cast(substr({{ expr }}, 1, 4) as integer) > 0
    )
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
    cast(round(cast({{ expr }} as numeric) / 100, 2) as {{ dbt.type_float() }})
{%- endmacro %}

{% macro sqlite__cents_to_currency(expr) -%}
    cast(round(cast({{ expr }} as integer) / 100.0, 2) as real)
{%- endmacro %}

{#- A decimal text as a number. -#}
{% macro to_decimal(expr) -%}
    {{ return(adapter.dispatch('to_decimal')(expr)) }}
{%- endmacro %}

{% macro default__to_decimal(expr) -%}
    cast(trim({{ expr }}) as {{ dbt.type_float() }})
{%- endmacro %}

{% macro sqlite__to_decimal(expr) -%}
    cast(trim({{ expr }}) as real)
{%- endmacro %}

{#- An ISO date text 'YYYY-MM-DD' as itself; null when it is not a real date. -#}
{% macro parse_date(expr) -%}
    {{ return(adapter.dispatch('parse_date')(expr)) }}
{%- endmacro %}

{% macro default__parse_date(expr) -%}
    case
        when trim({{ expr }}) ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$'
            and {{ dq_is_real_date('trim(' ~ expr ~ ')') }}
            then trim({{ expr }})
    end
{%- endmacro %}

{% macro sqlite__parse_date(expr) -%}
    cast(
        case
            when date(trim({{ expr }}), '+0 days') = trim({{ expr }}) then trim({{ expr }})
        end
        as text
    )
{%- endmacro %}

{#- Now, as the canonical text staging stores ('YYYY-MM-DD HH:MM:SS', 'YYYY-MM-DD'). -#}
{% macro dq_current_timestamp() -%}
    {{ return(adapter.dispatch('dq_current_timestamp')()) }}
{%- endmacro %}

{% macro default__dq_current_timestamp() -%}
    to_char(current_timestamp at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS')
{%- endmacro %}

{% macro sqlite__dq_current_timestamp() -%}
    datetime('now')
{%- endmacro %}

{% macro dq_current_date() -%}
    {{ return(adapter.dispatch('dq_current_date')()) }}
{%- endmacro %}

{% macro default__dq_current_date() -%}
    to_char(current_timestamp at time zone 'UTC', 'YYYY-MM-DD')
{%- endmacro %}

{% macro sqlite__dq_current_date() -%}
    date('now')
{%- endmacro %}

{#- True when the whole text matches a regular expression (Python syntax).
    SQLite has no regular expressions: the model registers the compiled
    pattern as a function on its own connection; `sub` of a pattern anchored
    at both ends returns '' exactly when the whole text matches. -#}
{% macro dq_matches(expr, pattern) -%}
    {{ return(adapter.dispatch('dq_matches')(expr, pattern)) }}
{%- endmacro %}

{% macro default__dq_matches(expr, pattern) -%}
    ({{ expr }} ~ {{ dq_string('^(?:' ~ pattern ~ ')$') }})
{%- endmacro %}

{% macro sqlite__dq_matches(expr, pattern) -%}
    {%- set name = 'dq_re_' ~ local_md5(pattern) -%}
    {%- if execute -%}
        {%- set connection, cursor = adapter.add_query('select 1 /* dq_matches: ' ~ name ~ ' */') -%}
        {%- set compiled = modules.re.compile('\\A(?:' ~ pattern ~ ')\\Z') -%}
        {%- do cursor.connection.create_function(name, 2, compiled.sub, deterministic=true) -%}
    {%- endif -%}
    ({{ expr }} is null or {{ name }}('', {{ expr }}) = '')
{%- endmacro %}

{#- Rounding to `digits` decimals, as a float (PostgreSQL rounds numerics only). -#}
{% macro dq_round(expr, digits) -%}
    {{ return(adapter.dispatch('dq_round')(expr, digits)) }}
{%- endmacro %}

{% macro default__dq_round(expr, digits) -%}
    cast(round(cast({{ expr }} as numeric), {{ digits }}) as {{ dq_float() }})
{%- endmacro %}

{% macro sqlite__dq_round(expr, digits) -%}
    cast(round({{ expr }}, {{ digits }}) as {{ dq_float() }})
{%- endmacro %}

{#- The marts' 8-byte float: SQLite's REAL, PostgreSQL's double precision
    (its `real` is 4 bytes and would lose cents on large sums). -#}
{% macro dq_float() -%}
    {{ return(adapter.dispatch('dq_float')()) }}
{%- endmacro %}

{% macro default__dq_float() -%}
    {{ dbt.type_float() }}
{%- endmacro %}

{% macro sqlite__dq_float() -%}
    real
{%- endmacro %}

{#- The marts' text type (Spark has no TEXT: dbt_project/macros/spark.sql). -#}
{% macro dq_text() -%}
    {{ return(adapter.dispatch('dq_text')()) }}
{%- endmacro %}

{% macro default__dq_text() -%}
    text
{%- endmacro %}

{#- The day of week of a 'YYYY-MM-DD HH:MM:SS' text: 0 = Sunday ... 6 = Saturday. -#}
{% macro dq_day_of_week(expr) -%}
    {{ return(adapter.dispatch('dq_day_of_week')(expr)) }}
{%- endmacro %}

{% macro default__dq_day_of_week(expr) -%}
    cast(extract(dow from cast({{ expr }} as timestamp)) as {{ dbt.type_int() }})
{%- endmacro %}

{% macro sqlite__dq_day_of_week(expr) -%}
    cast(strftime('%w', {{ expr }}) as {{ dbt.type_int() }})
{%- endmacro %}

{#- The hour of a 'YYYY-MM-DD HH:MM:SS' text (the same on every target). -#}
{% macro dq_hour(expr) -%}
    cast(substr({{ expr }}, 12, 2) as {{ dbt.type_int() }})
{%- endmacro %}
