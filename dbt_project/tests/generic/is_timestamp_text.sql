{#- SQLite has no timestamp type: staging stores canonical
    'YYYY-MM-DD HH:MM:SS' text. This test proves every value is one. -#}
{% test is_timestamp_text(model, column_name) %}

select *
from {{ model }}
where {{ column_name }} is not null
    and {{ parse_timestamp(column_name) }} is null

{% endtest %}
