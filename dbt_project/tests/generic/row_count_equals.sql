{#- The model has exactly as many rows as another relation (e.g. every clean
    order reaches the orders mart). -#}
{% test row_count_equals(model, other) %}

with

counts as (

    select
        (select count(*) from {{ model }}) as model_rows,
        (select count(*) from {{ other }}) as other_rows

)

select *
from counts
where model_rows <> other_rows

{% endtest %}
