{#- Every raw supply row with the reason it cannot be used, if any.
    A supply id repeats across products: the key is (id, sku). -#}
{%- set columns = ['id', 'name', 'cost', 'perishable', 'sku'] %}

with

source as (

    {{ flag_duplicates(ref('raw_supplies'), ['id', 'sku'], columns) }}

),

products as (

    select product_id from {{ ref('stg_products') }}

),

checked as (

    select
        source.*,
        {{ reject_reason([
            (is_blank('id'), 'missing supply id'),
            ('copy_number > 1', 'duplicate row'),
            (key_versions('source', ['id', 'sku']) ~ ' > 1', 'conflicting duplicate id and sku'),
            ('trim(sku) not in (select product_id from products)', 'unknown product'),
            ('not ' ~ is_integer_text('cost'), 'cost is not a whole number of cents'),
            ('cast(trim(cost) as integer) < 0', 'negative cost'),
            ("lower(trim(perishable)) not in ('true', 'false')", 'perishable is not True/False'),
        ]) }} as reject_reason
    from source

)

select * from checked
