{#- Every raw order-item row with the reason it cannot be used, if any.
    Items of a rejected order are rejected too, so marts never hold orphans. -#}
{%- set columns = ['id', 'order_id', 'sku'] %}

with

source as (

    {{ flag_duplicates(ref('raw_items'), ['id'], columns) }}

),

orders as (

    select order_id from {{ ref('stg_orders') }}

),

products as (

    select product_id from {{ ref('stg_products') }}

),

checked as (

    select
        source.*,
        {{ reject_reason([
            (is_blank('id'), 'missing item id'),
            ('copy_number > 1', 'duplicate row'),
            (key_versions('source', ['id']) ~ ' > 1', 'conflicting duplicate id'),
            ('trim(order_id) not in (select order_id from orders)', 'unknown or rejected order'),
            ('trim(sku) not in (select product_id from products)', 'unknown product'),
        ]) }} as reject_reason
    from source

)

select * from checked
