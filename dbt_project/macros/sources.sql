{#- The check / clean / quarantine models of every declared source.

    `dq sync` writes one stub per model into generated/ (a pipeline run: into
    its own build folder); each stub calls one of these macros with its
    source's declaration (seeds/<noun>.yml, docs/sources.md) as data:

      checked_<noun>   every raw row as received + copy_number + reject_reason
      stg_<noun>       the clean rows: renamed and cast, nothing else
      rejected_<noun>  the quarantine: raw rows as received + reject_reason

    Raw column names are headers from a CSV file and so untrusted: they are
    always quoted with dq_quote; reasons and values are SQL string literals
    built by dq_string. Clean names are checked identifiers (dq.sources). -#}

{#- The first failing rule wins; null means the row is clean. `rules` is a
    list of (condition, reason) pairs, checked in order. -#}
{% macro reject_reason(rules) -%}
    {%- if not rules -%}
    cast(null as {{ dbt.type_string() }})
    {%- else -%}
    cast(
        case
            {%- for condition, reason in rules %}
            when {{ condition }} then {{ dq_string(reason) }}
            {%- endfor %}
        end
        as {{ dbt.type_string() }}
    )
    {%- endif %}
{%- endmacro %}

{#- An identifier quoted for SQL, whatever characters it holds. -#}
{% macro dq_quote(name) -%}
    {{ return(adapter.dispatch('dq_quote')(name)) }}
{%- endmacro %}

{% macro default__dq_quote(name) -%}
    "{{ name | replace('"', '""') }}"
{%- endmacro %}

{#- Numbers the rows of a relation (`columns`: all of them, quoted). -#}
{% macro dq_row_number(columns) -%}
    {{ return(adapter.dispatch('dq_row_number')(columns)) }}
{%- endmacro %}

{% macro default__dq_row_number(columns) -%}
    row_number() over ()
{%- endmacro %}

{#- A text as an SQL string literal. -#}
{% macro dq_string(text) -%}
    '{{ text | string | replace("'", "''") }}'
{%- endmacro %}

{#- The raw cell of a column, as text. -#}
{% macro dq_raw(column, relation='') -%}
    {{ relation ~ '.' if relation }}{{ dq_quote(column.raw) }}
{%- endmacro %}

{#- True when a cell holds no value: null, only white space, or a declared null token. -#}
{% macro dq_blank(source, column, relation='') -%}
    {%- set raw = dq_raw(column, relation) -%}
    (trim(coalesce({{ raw }}, '')) = ''
    {%- if source.nulls %} or trim({{ raw }}) in (
        {%- for token in source.nulls %}{{ dq_string(token) }}{{ ", " if not loop.last }}{% endfor -%}
    ){%- endif %})
{%- endmacro %}

{#- A list of texts as an SQL list: ('a', 'b'). -#}
{% macro dq_list(texts) -%}
    ({%- for text in texts %}{{ dq_string(text) }}{{ ", " if not loop.last }}{% endfor -%})
{%- endmacro %}

{#- The trimmed text of a fixed-width date/timestamp as ISO text
    'YYYY-MM-DD[ HH:MM:SS]', or null when its shape does not fit the format.
    Only the shape is checked here; the calendar is checked by the parser. -#}
{% macro dq_reformat(expr, format, with_time) -%}
    {%- set widths = {'%Y': 4, '%m': 2, '%d': 2, '%H': 2, '%M': 2, '%S': 2} -%}
    {%- set starts = {} -%}
    {%- set literals = [] -%}
    {%- set position = namespace(at=1, i=0) -%}
    {%- for _ in range(format | length) -%}
        {%- if position.i < (format | length) -%}
            {%- set piece = format[position.i:position.i + 2] -%}
            {%- if piece in widths -%}
                {%- do starts.update({piece: position.at}) -%}
                {%- set position.at = position.at + widths[piece] -%}
                {%- set position.i = position.i + 2 -%}
            {%- else -%}
                {%- do literals.append((position.at, format[position.i])) -%}
                {%- set position.at = position.at + 1 -%}
                {%- set position.i = position.i + 1 -%}
            {%- endif -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set length = position.at - 1 -%}
    {%- set text = 'trim(' ~ expr ~ ')' -%}
    {%- set part = {} -%}
    {%- for field, width in widths.items() -%}
        {%- do part.update({field: 'substr(' ~ text ~ ', ' ~ starts[field] ~ ', ' ~ width ~ ')'
            if field in starts else "'00'"}) -%}
    {%- endfor -%}
    case
        when length({{ text }}) = {{ length }}
        {%- for at, char in literals %}
            and substr({{ text }}, {{ at }}, 1) = {{ dq_string(char) }}
        {%- endfor %}
        {%- for field in starts %}
            and {{ is_integer_text('substr(' ~ text ~ ', ' ~ starts[field] ~ ', ' ~ widths[field] ~ ')') }}
        {%- endfor %}
        then {{ part['%Y'] }} || '-' || {{ part['%m'] }} || '-' || {{ part['%d'] }}
            {%- if with_time %} || ' ' || {{ part['%H'] }} || ':' || {{ part['%M'] }} || ':' || {{ part['%S'] }}{% endif %}
    end
{%- endmacro %}

{#- The clean value of a column from its raw cell: typed, null when blank or
    when it does not parse. The one definition of "clean" for checks and staging. -#}
{% macro dq_clean_value(source, column, relation='') -%}
    {%- set raw = dq_raw(column, relation) -%}
    {%- set kind = column.type -%}
    cast(case when not {{ dq_blank(source, column, relation) }} then
    {%- if kind == 'text' %}
        cast({{ 'lower(trim(' ~ raw ~ '))' if column.lowercase else 'trim(' ~ raw ~ ')' }} as {{ dbt.type_string() }})
    {%- elif kind == 'integer' %}
        case when {{ is_integer_text(raw) }} then cast(trim({{ raw }}) as {{ dbt.type_int() }}) end
    {%- elif kind == 'decimal' or (kind == 'money' and column.unit == 'units') %}
        case when {{ is_decimal_text(raw) }} then {{ to_decimal(raw) }} end
    {%- elif kind == 'money' %}
        case when {{ is_integer_text(raw) }} then {{ cents_to_currency('trim(' ~ raw ~ ')') }} end
    {%- elif kind == 'boolean' %}
        case
            when lower(trim({{ raw }})) in {{ dq_list(column.true_values) }} then 1
            when lower(trim({{ raw }})) in {{ dq_list(column.false_values) }} then 0
        end
    {%- elif kind == 'timestamp' and column.format == 'iso' %}
        {{ parse_timestamp(raw) }}
    {%- elif kind == 'timestamp' %}
        {{ parse_timestamp(dq_reformat(raw, column.format, true)) }}
    {%- elif kind == 'date' and column.format == 'iso' %}
        {{ parse_date(raw) }}
    {%- else %}
        {{ parse_date(dq_reformat(raw, column.format, false)) }}
    {%- endif %}
    end as {{ dq_clean_type(column) }})
{%- endmacro %}

{#- The SQL type of a column's clean value. -#}
{% macro dq_clean_type(column) -%}
    {%- if column.type in ('integer', 'boolean') -%}{{ dbt.type_int() }}
    {%- elif column.type in ('decimal', 'money') -%}{{ dbt.type_float() }}
    {%- else -%}{{ dbt.type_string() }}
    {%- endif -%}
{%- endmacro %}

{#- Why a raw cell that is not blank fails to parse as its type, as a reason. -#}
{% macro dq_type_reason(column) -%}
    {%- set kind = column.type -%}
    {%- if kind == 'integer' -%}{{ column.label }} is not a whole number
    {%- elif kind == 'decimal' -%}{{ column.label }} is not a number
    {%- elif kind == 'money' and column.unit == 'cents' -%}{{ column.label }} is not a whole number of cents
    {%- elif kind == 'money' -%}{{ column.label }} is not an amount
    {%- elif kind == 'boolean' -%}{{ column.label }} is not one of {{ (column.true_values + column.false_values) | join(', ') }}
    {%- elif column.format == 'iso' -%}{{ column.label }} is not a {{ kind }}
    {%- else -%}{{ column.label }} is not a {{ kind }} ({{ column.format }})
    {%- endif -%}
{%- endmacro %}

{#- A date/timestamp bound: `now` or an ISO text. -#}
{% macro dq_bound(column, bound) -%}
    {%- if bound == 'now' and column.type == 'date' -%}
        {{ dq_current_date() }}
    {%- elif bound == 'now' -%}
        {{ dq_current_timestamp() }}
    {%- elif column.type in ('date', 'timestamp') -%}
        {{ dq_string(bound) }}
    {%- else -%}
        {{ bound }}
    {%- endif -%}
{%- endmacro %}

{#- The (condition, reason) pairs of every rule of a source, in the order of
    docs/sources.md. `c` is the relation holding the raw columns, `v` the one
    holding the clean values under their clean names, `r` the custom rule flags. -#}
{% macro dq_rules(source) -%}
    {%- set rules = [] -%}
    {%- set key = source.key -%}
    {%- set key_labels = [] -%}
    {%- for header in key -%}
        {%- set column = (source.columns | selectattr('header', 'equalto', header) | first) -%}
        {%- do key_labels.append(column.label) -%}
        {%- do rules.append((dq_blank(source, column, 'c'), column.label ~ ' is missing')) -%}
    {%- endfor -%}
    {%- set key_text = key_labels | join(' and ') -%}
    {%- if source.duplicates == 'keep_first' -%}
        {%- do rules.append(('c.copy_number > 1', 'duplicate row')) -%}
        {%- if key -%}
            {%- do rules.append(('c.dq_versions > 1', 'conflicting duplicate ' ~ key_text)) -%}
        {%- endif -%}
    {%- elif source.duplicates == 'reject_all' -%}
        {%- do rules.append(('c.dq_versions > 1', 'duplicate ' ~ (key_text if key else 'row'))) -%}
    {%- endif -%}
    {%- for column in source.columns -%}
        {%- set raw = dq_raw(column, 'c') -%}
        {%- set value = 'v.' ~ column.name -%}
        {%- set filled = 'not ' ~ dq_blank(source, column, 'c') -%}
        {%- if column.required and column.header not in key -%}
            {%- do rules.append((dq_blank(source, column, 'c'), column.label ~ ' is missing')) -%}
        {%- endif -%}
        {%- if column.type != 'text' -%}
            {%- do rules.append((filled ~ ' and ' ~ value ~ ' is null', dq_type_reason(column))) -%}
        {%- endif -%}
        {%- if column['values'] is not none -%}
            {%- set allowed = column['values'] | map('lower') | list if column.lowercase else column['values'] -%}
            {%- do rules.append((value ~ ' not in ' ~ dq_list(allowed),
                column.label ~ ' is not one of ' ~ column['values'] | join(', '))) -%}
        {%- endif -%}
        {%- if column.pattern is not none -%}
            {%- do rules.append(('not ' ~ dq_matches(value, column.pattern),
                column.label ~ ' does not match ' ~ column.pattern)) -%}
        {%- endif -%}
        {%- if column.min is not none -%}
            {%- do rules.append((value ~ ' < ' ~ dq_bound(column, column.min),
                column.label ~ (' is in the past' if column.min == 'now' else ' is below ' ~ column.min))) -%}
        {%- endif -%}
        {%- if column.max is not none -%}
            {%- do rules.append((value ~ ' > ' ~ dq_bound(column, column.max),
                column.label ~ (' is in the future' if column.max == 'now' else ' is above ' ~ column.max))) -%}
        {%- endif -%}
        {%- if column.references is not none -%}
            {%- set target = source.referenced[column.references] -%}
            {#- A clean key is never null (a missing key is rejected): the list is
                the key's index itself (macros/indexes.sql), not a copy per query. -#}
            {%- do rules.append((value ~ ' not in (select ' ~ target.key ~ ' from '
                ~ ref(target.clean_table) ~ ')',
                column.label ~ ' has no clean match in ' ~ column.references)) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- for rule in source.rules -%}
        {%- do rules.append(('r.dq_rule_' ~ loop.index ~ ' = 1', rule.name)) -%}
    {%- endfor -%}
    {{ return(rules) }}
{%- endmacro %}

{#- checked_<noun>: every raw row, as received, with its reason (null when clean). -#}
{% macro dq_checked(source) -%}
{%- set raw_columns = [] -%}
{%- for column in source.columns %}{% do raw_columns.append(dq_quote(column.raw)) %}{% endfor -%}
{%- set all_columns = raw_columns | join(', ') -%}
{%- set key_columns = [] -%}
{%- for column in source.columns if column.header in source.key %}{% do key_columns.append('trim(' ~ dq_quote(column.raw) ~ ')') %}{% endfor -%}
with

numbered as (

    select
        {{ all_columns }},
        {{ dq_row_number(all_columns) }} as dq_row,
        cast(
            row_number() over (partition by {{ all_columns }} order by {{ all_columns }})
            as {{ dbt.type_int() }}
        ) as copy_number
    from {{ ref(source.raw_table) }}

),

counted as (

    select
        numbered.*,
        {%- if source.duplicates == 'keep_first' and key_columns %}
        count(case when copy_number = 1 then 1 end) over (partition by {{ key_columns | join(', ') }})
        {%- elif source.duplicates == 'reject_all' %}
        count(*) over (partition by {{ (key_columns or raw_columns) | join(', ') }})
        {%- else %}
        1
        {%- endif %} as dq_versions
    from numbered

),

clean_values as (

    select
        dq_row,
        {%- for column in source.columns %}
        {{ dq_clean_value(source, column) }} as {{ column.name }}{{ "," if not loop.last }}
        {%- endfor %}
    from numbered

),

rule_flags as (

    select
        dq_row
        {%- for rule in source.rules %},
        case when ({{ rule.reject_if }}) then 1 else 0 end as dq_rule_{{ loop.index }}
        {%- endfor %}
    from clean_values

),

checked as (

    select
        {%- for column in source.columns %}
        c.{{ dq_quote(column.raw) }},
        {%- endfor %}
        c.copy_number,
        {{ reject_reason(dq_rules(source)) }} as reject_reason
    from counted as c
    inner join clean_values as v on v.dq_row = c.dq_row
    inner join rule_flags as r on r.dq_row = c.dq_row

)

select * from checked
{%- endmacro %}

{#- stg_<noun>: the clean rows, renamed and cast. -#}
{% macro dq_staged(source) -%}
with

source as (

    select * from {{ ref(source.checked_table) }}
    where reject_reason is null

),

renamed as (

    select
        {%- for column in source.columns %}
        {{ dq_clean_value(source, column) }} as {{ column.name }}
        {%- for flag, value in column.indicators %},
        cast(
            case when {{ dq_clean_value(source, column) }} = {{ dq_string(value | lower if column.lowercase else value) }}
                then 1 else 0 end
            as {{ dbt.type_int() }}
        ) as {{ flag }}
        {%- endfor %}{{ "," if not loop.last }}
        {%- endfor %}
    from source

)

select * from renamed
{%- endmacro %}

{#- rejected_<noun>: the quarantine, raw rows as received with their reason. -#}
{% macro dq_rejected(source) -%}
with

rejected as (

    select
        {%- for column in source.columns %}
        {{ dq_quote(column.raw) }},
        {%- endfor %}
        reject_reason
    from {{ ref(source.checked_table) }}
    where reject_reason is not null

)

select * from rejected
{%- endmacro %}
