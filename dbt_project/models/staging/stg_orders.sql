with

source as (

    select * from {{ ref('checked_orders') }}
    where reject_reason is null

),

renamed as (

    select
        ----------  ids
        cast(trim(id) as text) as order_id,
        cast(trim(store_id) as text) as location_id,
        cast(trim(customer) as text) as customer_id,

        ----------  numerics
        {{ cents_to_currency('trim(subtotal)') }} as subtotal,
        {{ cents_to_currency('trim(tax_paid)') }} as tax_paid,
        {{ cents_to_currency('trim(order_total)') }} as order_total,

        ----------  timestamps
        {{ parse_timestamp('ordered_at') }} as ordered_at

    from source

)

select * from renamed
