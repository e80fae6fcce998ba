{#- Every raw order row with the reason it cannot be used, if any. -#}
{%- set columns = [
    'id', 'customer', 'ordered_at', 'store_id', 'subtotal', 'tax_paid', 'order_total',
] %}
{%- set amounts_are_cents -%}
    {{ is_integer_text('subtotal') }}
    and {{ is_integer_text('tax_paid') }}
    and {{ is_integer_text('order_total') }}
{%- endset %}

with

source as (

    {{ flag_duplicates(ref('raw_orders'), ['id'], columns) }}

),

customers as (

    select customer_id from {{ ref('stg_customers') }}

),

locations as (

    select location_id from {{ ref('stg_locations') }}

),

checked as (

    select
        source.*,
        {{ reject_reason([
            (is_blank('id'), 'missing order id'),
            ('copy_number > 1', 'duplicate row'),
            (key_versions('source', ['id']) ~ ' > 1', 'conflicting duplicate id'),
            ('trim(customer) not in (select customer_id from customers)', 'unknown customer'),
            ('trim(store_id) not in (select location_id from locations)', 'unknown store'),
            ('not (' ~ amounts_are_cents ~ ')', 'amount is not a whole number of cents'),
            ('cast(trim(subtotal) as integer) < 0 or cast(trim(tax_paid) as integer) < 0'
                ~ ' or cast(trim(order_total) as integer) < 0', 'negative amount'),
            ('cast(trim(subtotal) as integer) + cast(trim(tax_paid) as integer)'
                ~ ' <> cast(trim(order_total) as integer)', 'subtotal plus tax_paid is not order_total'),
            (parse_timestamp('ordered_at') ~ ' is null', 'ordered_at is not a timestamp'),
            (parse_timestamp('ordered_at') ~ ' > ' ~ dbt.current_timestamp(), 'ordered_at is in the future'),
        ]) }} as reject_reason
    from source

)

select * from checked
