{#- Nothing is lost between a raw seed and staging: raw rows = clean rows +
    rejected rows. Attach it to the staging (clean) model. -#}
{% test reconciles_with_raw(model, raw, rejected) %}

with

counts as (

    select
        (select count(*) from {{ raw }}) as raw_rows,
        (select count(*) from {{ model }}) as clean_rows,
        (select count(*) from {{ rejected }}) as rejected_rows

)

select *
from counts
where raw_rows <> clean_rows + rejected_rows

{% endtest %}
