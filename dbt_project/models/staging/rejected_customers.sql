{#- Rows of raw_customers that staging could not use, exactly as received, with the reason. -#}
with

rejected as (

    select
        id,
        name,
        reject_reason
    from {{ ref('checked_customers') }}
    where reject_reason is not null

)

select * from rejected
