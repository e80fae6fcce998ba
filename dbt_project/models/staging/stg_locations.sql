with

source as (

    select * from {{ ref('checked_stores') }}
    where reject_reason is null

),

renamed as (

    select
        ----------  ids
        cast(trim(id) as text) as location_id,

        ----------  strings
        cast(trim(name) as text) as location_name,

        ----------  numerics
        {{ to_decimal('tax_rate') }} as tax_rate,

        ----------  timestamps
        {{ parse_timestamp('opened_at') }} as opened_at

    from source

)

select * from renamed
