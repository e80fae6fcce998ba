with

source as (

    select * from {{ ref('checked_products') }}
    where reject_reason is null

),

renamed as (

    select
        ----------  ids
        cast(trim(sku) as text) as product_id,

        ----------  strings
        cast(trim(name) as text) as product_name,
        cast(lower(trim(type)) as text) as product_type,
        cast(trim(description) as text) as product_description,

        ----------  numerics
        {{ cents_to_currency('trim(price)') }} as product_price,

        ----------  booleans
        cast(case when lower(trim(type)) = 'jaffle' then 1 else 0 end as integer) as is_food_item,
        cast(case when lower(trim(type)) = 'beverage' then 1 else 0 end as integer) as is_drink_item

    from source

)

select * from renamed
