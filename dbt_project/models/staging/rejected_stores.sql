{#- Rows of raw_stores that staging could not use, exactly as received, with the reason. -#}
with

rejected as (

    select
        id,
        name,
        opened_at,
        tax_rate,
        reject_reason
    from {{ ref('checked_stores') }}
    where reject_reason is not null

)

select * from rejected
