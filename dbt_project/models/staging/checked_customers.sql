{#- Every raw customer row with the reason it cannot be used, if any. -#}
{%- set columns = ['id', 'name'] %}

with

source as (

    {{ flag_duplicates(ref('raw_customers'), ['id'], columns) }}

),

checked as (

    select
        source.*,
        {{ reject_reason([
            (is_blank('id'), 'missing customer id'),
            ('copy_number > 1', 'duplicate row'),
            (key_versions('source', ['id']) ~ ' > 1', 'conflicting duplicate id'),
            (is_blank('name'), 'missing customer name'),
        ]) }} as reject_reason
    from source

)

select * from checked
