-- What the model may know when an order starts: when, where, and the
-- customer's history strictly before it. Never the order's own items or
-- amounts (that would leak the label).

with

orders as (

    select * from {{ ref('orders') }}

),

history as (

    select
        *,
        -- Orders up to and including this moment, minus the ones at this very
        -- moment (this order and any placed in the same minute): strictly before.
        count(*) over (
            partition by customer_id
            order by ordered_at asc
        ) - count(*) over (
            partition by customer_id, ordered_at
        ) as previous_orders,
        sum(is_food_order) over (
            partition by customer_id
            order by ordered_at asc
        ) - sum(is_food_order) over (
            partition by customer_id, ordered_at
        ) as previous_food_orders

    from orders

),

features as (

    select
        ----------  ids
        order_id,
        customer_id,
        location_id,

        ----------  numerics
        {{ dq_hour('ordered_at') }} as order_hour,
        -- 0 = Sunday ... 6 = Saturday
        {{ dq_day_of_week('ordered_at') }} as order_day_of_week,
        cast(previous_orders as integer) as previous_orders,
        cast(
            case
                when previous_orders > 0
                    then 1.0 * previous_food_orders / previous_orders
            end as {{ dq_float() }}
        ) as previous_food_share,

        ----------  booleans
        cast(is_food_order as integer) as includes_food,

        ----------  timestamps
        ordered_at

    from history

)

select * from features
