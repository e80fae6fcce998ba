{#- Rows of raw_orders that staging could not use, exactly as received, with the reason. -#}
with

rejected as (

    select
        id,
        customer,
        ordered_at,
        store_id,
        subtotal,
        tax_paid,
        order_total,
        reject_reason
    from {{ ref('checked_orders') }}
    where reject_reason is not null

)

select * from rejected
