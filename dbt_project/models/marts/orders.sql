with

orders as (

    select * from {{ ref('stg_orders') }}

),

order_items as (

    select * from {{ ref('order_items') }}

),

order_items_summary as (

    select
        order_id,
        sum(supply_cost) as order_cost,
        sum(product_price) as order_items_subtotal,
        count(order_item_id) as count_order_items,
        sum(is_food_item) as count_food_items,
        sum(is_drink_item) as count_drink_items

    from order_items

    group by order_id

),

compute_booleans as (

    select
        ----------  ids
        orders.order_id,
        orders.location_id,
        orders.customer_id,

        ----------  numerics
        orders.subtotal,
        orders.tax_paid,
        orders.order_total,
        cast(coalesce(order_items_summary.order_cost, 0) as {{ dq_float() }}) as order_cost,
        cast(coalesce(order_items_summary.order_items_subtotal, 0) as {{ dq_float() }})
            as order_items_subtotal,
        cast(coalesce(order_items_summary.count_order_items, 0) as integer) as count_order_items,
        cast(coalesce(order_items_summary.count_food_items, 0) as integer) as count_food_items,
        cast(coalesce(order_items_summary.count_drink_items, 0) as integer) as count_drink_items,

        ----------  booleans
        cast(case when order_items_summary.count_food_items > 0 then 1 else 0 end as integer)
            as is_food_order,
        cast(case when order_items_summary.count_drink_items > 0 then 1 else 0 end as integer)
            as is_drink_order,

        ----------  timestamps
        orders.ordered_at

    from orders

    left join order_items_summary
        on orders.order_id = order_items_summary.order_id

),

customer_order_count as (

    select
        *,
        cast(row_number() over (
            partition by customer_id
            order by ordered_at asc, order_id asc
        ) as integer) as customer_order_number

    from compute_booleans

)

select * from customer_order_count
