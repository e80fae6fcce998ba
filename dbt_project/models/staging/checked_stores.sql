{#- Every raw store row with the reason it cannot be used, if any. -#}
{%- set columns = ['id', 'name', 'opened_at', 'tax_rate'] %}

with

source as (

    {{ flag_duplicates(ref('raw_stores'), ['id'], columns) }}

),

checked as (

    select
        source.*,
        {{ reject_reason([
            (is_blank('id'), 'missing store id'),
            ('copy_number > 1', 'duplicate row'),
            (key_versions('source', ['id']) ~ ' > 1', 'conflicting duplicate id'),
            (is_blank('name'), 'missing store name'),
            (parse_timestamp('opened_at') ~ ' is null', 'opened_at is not a timestamp'),
            ('not ' ~ is_decimal_text('tax_rate'), 'tax_rate is not a number'),
            (to_decimal('tax_rate') ~ ' not between 0 and 0.25', 'tax_rate outside 0..0.25'),
        ]) }} as reject_reason
    from source

)

select * from checked
