{#- Spark SQL implementations of the project's dispatched macros (DQ_TARGET=spark,
    dq.spark_target). They return what the SQLite and PostgreSQL ones return:
    canonical text for dates and timestamps ('YYYY-MM-DD HH:MM:SS', UTC: the
    session's time zone is UTC, dq.config spark_conf), 8-byte floats, 0 = Sunday.

    dbt-spark runs its session with ANSI mode off: a cast that cannot parse
    gives null, as on SQLite. Regular expressions are Java's (rlike); string
    literals unescape backslashes, so a pattern's backslashes are doubled. -#}

{% macro spark__is_integer_text(expr) -%}
    (trim({{ expr }}) rlike '^-?[0-9]+$')
{%- endmacro %}

{% macro spark__is_decimal_text(expr) -%}
    (trim({{ expr }}) rlike '^-?([0-9]+([.][0-9]*)?|[.][0-9]+)$')
{%- endmacro %}

{% macro spark__parse_timestamp(expr) -%}
    {#- The shape first (Spark's cast also takes '2018-9-1' or a zone suffix);
        an impossible date ('2018-02-31') or hour casts to null. -#}
    case
        when trim({{ expr }}) rlike '^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]+)?)?)?$'
            then date_format(
                try_cast(replace(trim({{ expr }}), 'T', ' ') as timestamp),
                'yyyy-MM-dd HH:mm:ss'
            )
    end
{%- endmacro %}

{% macro spark__parse_date(expr) -%}
    case
        when trim({{ expr }}) rlike '^[0-9]{4}-[0-9]{2}-[0-9]{2}$'
            and try_cast(trim({{ expr }}) as date) is not null
            then trim({{ expr }})
    end
{%- endmacro %}

{% macro spark__cents_to_currency(expr) -%}
    cast(round(cast({{ expr }} as decimal(20, 0)) / 100, 2) as double)
{%- endmacro %}

{% macro spark__to_decimal(expr) -%}
    cast(trim({{ expr }}) as double)
{%- endmacro %}

{% macro spark__dq_current_timestamp() -%}
    date_format(current_timestamp(), 'yyyy-MM-dd HH:mm:ss')
{%- endmacro %}

{% macro spark__dq_current_date() -%}
    date_format(current_timestamp(), 'yyyy-MM-dd')
{%- endmacro %}

{% macro spark__dq_matches(expr, pattern) -%}
    ({{ expr }} rlike {{ dq_string(('^(?:' ~ pattern ~ ')$') | replace('\\', '\\\\')) }})
{%- endmacro %}

{% macro spark__dq_round(expr, digits) -%}
    cast(round(cast({{ expr }} as double), {{ digits }}) as {{ dq_float() }})
{%- endmacro %}

{#- Spark's FLOAT is 4 bytes: the marts' and staging's floats are DOUBLE, 8 bytes
    as on SQLite and PostgreSQL. This also serves dbt.type_float() (dq_clean_type). -#}
{% macro spark__dq_float() -%}
    double
{%- endmacro %}

{% macro spark__type_float() -%}
    double
{%- endmacro %}

{% macro spark__dq_day_of_week(expr) -%}
    cast(dayofweek(cast({{ expr }} as timestamp)) - 1 as {{ dbt.type_int() }})
{%- endmacro %}

{#- Spark has no TEXT type. -#}
{% macro spark__dq_text() -%}
    string
{%- endmacro %}

{#- Spark quotes identifiers with backticks; with ANSI mode off a double-quoted
    name would be a string literal. -#}
{% macro spark__dq_quote(name) -%}
    `{{ name | replace('`', '``') }}`
{%- endmacro %}

{#- Spark numbers rows only in an order. Ordering by every raw column makes the
    numbering the same each time the CTE is evaluated (Spark inlines it once per
    use): rows that tie are identical, so which of them gets which number does
    not change any result. -#}
{% macro spark__dq_row_number(columns) -%}
    row_number() over (order by {{ columns }})
{%- endmacro %}

{#- dbt-spark's seed table, with the project's `column_types: text` (every raw
    column is text, dq.generate) spelled as Spark's STRING. -#}
{% macro spark__create_csv_table(model, agate_table) %}
  {%- set column_override = model['config'].get('column_types', {}) -%}
  {%- set quote_seed_column = model['config'].get('quote_columns', None) -%}

  {% set sql %}
    create table {{ this.render() }} (
        {%- for col_name in agate_table.column_names -%}
            {%- set inferred_type = adapter.convert_type(agate_table, loop.index0) -%}
            {%- set type = column_override.get(col_name, inferred_type) -%}
            {%- set type = 'string' if (type | lower) == 'text' else type -%}
            {%- set column_name = (col_name | string) -%}
            {{ adapter.quote_seed_column(column_name, quote_seed_column) }} {{ type }} {%- if not loop.last -%}, {%- endif -%}
        {%- endfor -%}
    )
    {{ file_format_clause() }}
    {{ partition_cols(label="partitioned by") }}
    {{ clustered_cols(label="clustered by") }}
    {{ location_clause() }}
    {{ comment_clause() }}
  {% endset %}

  {% call statement('_') -%}
    {{ sql }}
  {%- endcall %}

  {{ return(sql) }}
{% endmacro %}

{#- dbt-spark's seed rows, as literals. With `method: session` its stock loader
    binds every value as '<value>' unescaped: a quote in a cell breaks the
    statement and an empty cell (None) loads as the text 'None'. Here a cell is
    null or a string literal with its backslashes and quotes escaped. -#}
{% macro spark__load_csv_rows(model, agate_table) %}
  {%- set column_override = model['config'].get('column_types', {}) -%}
  {%- set types = [] -%}
  {%- for col_name in agate_table.column_names -%}
      {%- set type = column_override.get(col_name, adapter.convert_type(agate_table, loop.index0)) -%}
      {%- do types.append('string' if (type | lower) == 'text' else type) -%}
  {%- endfor -%}
  {%- set statements = [] -%}
  {%- for chunk in agate_table.rows | batch(get_batch_size()) -%}
      {%- set values = [] -%}
      {%- for row in chunk -%}
          {%- set cells = [] -%}
          {%- for value in row -%}
              {%- if value is none -%}
                  {%- do cells.append('cast(null as ' ~ types[loop.index0] ~ ')') -%}
              {%- else -%}
                  {%- set text = (value | string) | replace('\\', '\\\\') | replace("'", "\\'") -%}
                  {%- do cells.append("cast('" ~ text ~ "' as " ~ types[loop.index0] ~ ')') -%}
              {%- endif -%}
          {%- endfor -%}
          {%- do values.append('(' ~ cells | join(', ') ~ ')') -%}
      {%- endfor -%}
      {%- set sql = 'insert into ' ~ this.render() ~ ' values\n' ~ values | join(',\n') -%}
      {%- do adapter.add_query(sql, abridge_sql_log=True) -%}
      {%- if loop.first -%}{%- do statements.append(sql) -%}{%- endif -%}
  {%- endfor -%}
  {{ return(statements[0] if statements else '') }}
{% endmacro %}
