with

source as (

    select * from {{ ref('checked_supplies') }}
    where reject_reason is null

),

renamed as (

    select
        ----------  ids
        cast(trim(id) || '-' || trim(sku) as text) as supply_uuid,
        cast(trim(id) as text) as supply_id,
        cast(trim(sku) as text) as product_id,

        ----------  strings
        cast(trim(name) as text) as supply_name,

        ----------  numerics
        {{ cents_to_currency('trim(cost)') }} as supply_cost,

        ----------  booleans
        cast(
            case when lower(trim(perishable)) = 'true' then 1 else 0 end as integer
        ) as is_perishable_supply

    from source

)

select * from renamed
