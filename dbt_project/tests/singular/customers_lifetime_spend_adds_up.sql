{#- A customer's lifetime spend is the sum of their orders' totals, to the cent. -#}
with

spend as (

    select customer_id, sum(order_total) as spend
    from {{ ref('orders') }}
    group by customer_id

)

select customers.*
from {{ ref('customers') }} as customers
left join spend on spend.customer_id = customers.customer_id
where {{ dq_round('customers.lifetime_spend - coalesce(spend.spend, 0)', 2) }} <> 0
