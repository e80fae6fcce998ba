with

source as (

    select * from {{ ref('checked_customers') }}
    where reject_reason is null

),

renamed as (

    select
        ----------  ids
        cast(trim(id) as text) as customer_id,

        ----------  strings
        cast(trim(name) as text) as customer_name

    from source

)

select * from renamed
