{#- Fast seed loading for dbt-sqlite (issue 4).

    The stock `sqlite__load_csv_rows` (dbt-sqlite 1.10) spends almost all of
    `dbt seed` inside Jinja: it dispatches `get_binding_char()` once per cell
    and calls `adapter.transform_seed_row` once per row. This override keeps
    the same statements and the same values (multi-row `insert ... values`
    with bound parameters, the same column list, the same Decimal-to-text
    conversion) but does the per-cell work in Python:

    - the placeholder list of a full batch is rendered once and reused;
    - a batch is flattened with one `list.extend` per row, no template work
      per cell, and converted by ONE `adapter.transform_seed_row` call, which
      maps a value at a time and so does not care that it is handed a whole
      batch instead of one row;
    - batches hold as many rows as SQLite's bound-variable limit of the live
      connection allows (read with `sqlite3.Connection.getlimit`), so the
      loader works on builds limited to 999 variables as well as on builds
      allowing 32766 or 250000, and no statement is larger than it may be.

    dbt finds this macro before the adapter's one because dispatch searches
    the root project first; nothing has to be configured.

    Routes measured and dropped: `modules.itertools.chain` would flatten in C
    but is deprecated in dbt 1.11; binding column-major with numbered `?NNN`
    parameters (to flatten with `zip`) made loads 5x slower, as SQLite looks
    every `?NNN` up in a list while parsing.

    CSV reading (issue 13): dbt's seed materialization reads the file into an
    agate table before this macro runs (about 8 us per row, the whole file in
    memory). In the pipeline's dbt process (dq.dbt.invoke) dq.seed_stream
    replaces that reader for all-text seeds with a table that reads the file
    a batch at a time and offers `flat_batches(batch_size, transform)`: flat
    value lists, ready to bind. `dq_insert_batches` uses them when the table
    has them (no Jinja loop per row) and iterates `agate_table.rows` as before
    when it is a real agate table (plain `dbt seed`). -#}

{#- The largest number of `?` one statement may bind on this connection. -#}
{% macro seed_loader_variable_limit() %}
    {#- A trivial statement hands back the DB-API cursor of the thread's
        connection; its `getlimit` reports the limit in force at run time,
        which also covers a host process that lowered it with `setlimit`.
        Compile options would only tell the build's default. -#}
    {%- set connection, cursor = adapter.add_query('select 1 /* seed_loader: variable limit */') -%}
    {%- set handle = cursor.connection if cursor is not none else none -%}
    {%- if handle is not none and handle.getlimit is defined -%}
        {#- 9 is SQLITE_LIMIT_VARIABLE_NUMBER, fixed by SQLite's C API. -#}
        {{ return(handle.getlimit(9)) }}
    {%- endif -%}
    {#- Python < 3.11 has no getlimit: 999 is the smallest limit any SQLite
        build has shipped with, so it is safe everywhere. -#}
    {{ return(999) }}
{% endmacro %}

{#- Rows per insert statement for a seed with `column_count` columns. -#}
{% macro seed_loader_batch_size(column_count) %}
    {%- set variable_limit = seed_loader_variable_limit() -%}
    {#- Beyond 32766 variables (SQLite's default limit since 3.32) a
        statement loads no faster but its SQL and VDBE program get bigger:
        Debian's 250000 cost ~60 MB more peak memory on one year of data. -#}
    {%- set variables = [variable_limit, 32766] | min -%}
    {#- At least one row: a seed wider than the limit fails exactly as it
        does with the stock loader ("too many SQL variables"). -#}
    {{ return([variables // [column_count, 1] | max, 1] | max) }}
{% endmacro %}

{% macro sqlite__load_csv_rows(model, agate_table) %}
    {%- set column_count = agate_table.column_names | length -%}
    {{ return(dq_insert_batches(
        model, agate_table, '?', seed_loader_batch_size(column_count),
        adapter.transform_seed_row, this.schema ~ '.' ~ this.identifier
    )) }}
{% endmacro %}

{#- PostgreSQL (issue 12): stock dbt-postgres uses the default loader, whose
    Jinja renders a `%s` per cell (215 s of a 1-year run's seed step here).
    The same statements and bindings (psycopg2 interpolates them on the client,
    so no server parameter limit applies), batches of `get_batch_size()` rows
    as stock, values bound as agate holds them (stock transforms nothing). -#}
{% macro postgres__load_csv_rows(model, agate_table) %}
    {{ return(dq_insert_batches(
        model, agate_table, '%s', get_batch_size(), none, this.render()
    )) }}
{% endmacro %}

{#- Multi-row inserts of every row of the seed: `placeholder` per value,
    `batch_size` rows per statement, `transform` (or none) applied to a whole
    batch's values at once. Returns the first statement, as stock does. -#}
{% macro dq_insert_batches(model, agate_table, placeholder, batch_size, transform, relation) %}
    {%- set column_count = agate_table.column_names | length -%}
    {%- set row_count = agate_table.rows | length -%}
    {%- set cols_sql = get_seed_column_quoted_csv(model, agate_table.column_names) -%}
    {%- set insert_head = 'insert into ' ~ relation ~ ' (' ~ cols_sql ~ ') values\n' -%}
    {%- set statements = [] -%}

    {%- if row_count > 0 -%}
        {%- set batch_size = [batch_size, row_count] | min -%}
        {#- Every batch but the last has the same shape: render its SQL once. -#}
        {%- set row_placeholder = '(' ~ ([placeholder] * column_count) | join(', ') ~ ')' -%}
        {%- set full_batch_sql = insert_head ~ ([row_placeholder] * batch_size) | join(',\n') -%}

        {%- if agate_table.flat_batches is defined -%}
            {#- A streamed table (dq.seed_stream, issue 13) reads the CSV a batch
                at a time and hands each batch over already flat: no loop per row
                here. It applies `transform` itself where values need it. -#}
            {%- for values in agate_table.flat_batches(batch_size, transform) -%}
                {%- set rows = (values | length) // column_count -%}
                {%- if rows == batch_size -%}
                    {%- set sql = full_batch_sql -%}
                {%- else -%}
                    {%- set sql = insert_head ~ ([row_placeholder] * rows) | join(',\n') -%}
                {%- endif -%}
                {%- do adapter.add_query(sql, bindings=values, abridge_sql_log=True) -%}
                {%- if loop.first -%}
                    {%- do statements.append(sql) -%}
                {%- endif -%}
            {%- endfor -%}
        {%- else -%}
            {%- for chunk in agate_table.rows | batch(batch_size) -%}
                {%- if chunk | length == batch_size -%}
                    {%- set sql = full_batch_sql -%}
                {%- else -%}
                    {%- set sql = insert_head ~ ([row_placeholder] * (chunk | length)) | join(',\n') -%}
                {%- endif -%}
                {#- The one loop left per row. Binding `extend` once skips the
                    sandbox's attribute checks on every row. -#}
                {%- set values = [] -%}
                {%- set extend = values.extend -%}
                {%- for row in chunk -%}
                    {%- do extend(row) -%}
                {%- endfor -%}
                {#- One call converts the whole batch (SQLite: Decimal -> str, like
                    stock): it maps value by value, so a batch is as good as a row. -#}
                {%- set bindings = transform(values) if transform is not none else values -%}
                {%- do adapter.add_query(sql, bindings=bindings, abridge_sql_log=True) -%}
                {%- if loop.first -%}
                    {%- do statements.append(sql) -%}
                {%- endif -%}
            {%- endfor -%}
        {%- endif -%}
    {%- endif -%}

    {#- Like stock: the first statement is rendered into the compiled files.
        A seed without rows inserts nothing; stock then returns undefined,
        which renders as an empty string too. -#}
    {{ return(statements[0] if statements else '') }}
{% endmacro %}
