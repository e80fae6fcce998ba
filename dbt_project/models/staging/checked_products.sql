{#- Every raw product row with the reason it cannot be used, if any. -#}
{%- set columns = ['sku', 'name', 'type', 'price', 'description'] %}

with

source as (

    {{ flag_duplicates(ref('raw_products'), ['sku'], columns) }}

),

checked as (

    select
        source.*,
        {{ reject_reason([
            (is_blank('sku'), 'missing sku'),
            ('copy_number > 1', 'duplicate row'),
            (key_versions('source', ['sku']) ~ ' > 1', 'conflicting duplicate sku'),
            ("lower(trim(type)) not in ('jaffle', 'beverage')", 'type is neither jaffle nor beverage'),
            ('not ' ~ is_integer_text('price'), 'price is not a whole number of cents'),
            ('cast(trim(price) as integer) < 0', 'negative price'),
        ]) }} as reject_reason
    from source

)

select * from checked
