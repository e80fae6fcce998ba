{#- Rows of raw_products that staging could not use, exactly as received, with the reason. -#}
with

rejected as (

    select
        sku,
        name,
        type,
        price,
        description,
        reject_reason
    from {{ ref('checked_products') }}
    where reject_reason is not null

)

select * from rejected
