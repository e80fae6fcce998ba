with

customers as (

    select * from {{ ref('stg_customers') }}

),

orders as (

    select * from {{ ref('orders') }}

),

customer_orders_summary as (

    select
        customer_id,
        count(distinct order_id) as count_lifetime_orders,
        min(ordered_at) as first_ordered_at,
        max(ordered_at) as last_ordered_at,
        sum(subtotal) as lifetime_spend_pretax,
        sum(tax_paid) as lifetime_tax_paid,
        sum(order_total) as lifetime_spend

    from orders

    group by customer_id

),

joined as (

    select
        ----------  ids
        customers.customer_id,

        ----------  strings
        customers.customer_name,
        cast(
            case
                when coalesce(customer_orders_summary.count_lifetime_orders, 0) > 1 then 'returning'
                else 'new'
            end
            as {{ dq_text() }}
        ) as customer_type,

        ----------  numerics
        cast(coalesce(customer_orders_summary.count_lifetime_orders, 0) as integer)
            as count_lifetime_orders,
        {{ dq_round('coalesce(customer_orders_summary.lifetime_spend_pretax, 0)', 2) }}
            as lifetime_spend_pretax,
        {{ dq_round('coalesce(customer_orders_summary.lifetime_tax_paid, 0)', 2) }}
            as lifetime_tax_paid,
        {{ dq_round('coalesce(customer_orders_summary.lifetime_spend, 0)', 2) }}
            as lifetime_spend,

        ----------  timestamps
        cast(customer_orders_summary.first_ordered_at as {{ dq_text() }}) as first_ordered_at,
        cast(customer_orders_summary.last_ordered_at as {{ dq_text() }}) as last_ordered_at

    from customers

    left join customer_orders_summary
        on customers.customer_id = customer_orders_summary.customer_id

)

select * from joined
