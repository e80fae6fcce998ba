{#- Rows of raw_supplies that staging could not use, exactly as received, with the reason. -#}
with

rejected as (

    select
        id,
        name,
        cost,
        perishable,
        sku,
        reject_reason
    from {{ ref('checked_supplies') }}
    where reject_reason is not null

)

select * from rejected
