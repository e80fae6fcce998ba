with

source as (

    select * from {{ ref('checked_items') }}
    where reject_reason is null

),

renamed as (

    select
        ----------  ids
        cast(trim(id) as text) as order_item_id,
        cast(trim(order_id) as text) as order_id,
        cast(trim(sku) as text) as product_id

    from source

)

select * from renamed
