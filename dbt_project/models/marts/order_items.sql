with

order_items as (

    select * from {{ ref('stg_items') }}

),

orders as (

    select * from {{ ref('stg_orders') }}

),

products as (

    select * from {{ ref('stg_products') }}

),

supplies as (

    select * from {{ ref('stg_supplies') }}

),

order_supplies_summary as (

    select
        product_id,
        sum(supply_cost) as supply_cost

    from supplies

    group by product_id

),

joined as (

    select
        ----------  ids
        order_items.order_item_id,
        order_items.order_id,
        order_items.product_id,

        ----------  strings
        products.product_name,

        ----------  numerics
        products.product_price,
        cast(coalesce(order_supplies_summary.supply_cost, 0) as {{ dq_float() }}) as supply_cost,

        ----------  booleans
        products.is_food_item,
        products.is_drink_item,

        ----------  timestamps
        orders.ordered_at

    from order_items

    inner join orders on order_items.order_id = orders.order_id

    inner join products on order_items.product_id = products.product_id

    left join order_supplies_summary
        on order_items.product_id = order_supplies_summary.product_id

)

select * from joined
