{#- Rows of raw_items that staging could not use, exactly as received, with the reason. -#}
with

rejected as (

    select
        id,
        order_id,
        sku,
        reject_reason
    from {{ ref('checked_items') }}
    where reject_reason is not null

)

select * from rejected
