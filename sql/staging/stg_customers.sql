-- Grain: one row per customer: the profile from the latest load that changed
-- it (later loads win; within a load, the later source line).
create or replace view mkt.stg_customers as

with

source as (
    select * from raw.customers
),

loads as (
    select load_id, loaded_at from raw.load_log
),

ranked as (
    select
        source.*,
        row_number() over (
            partition by customer_id
            order by loads.loaded_at desc nulls last, source.source_line desc
        ) as recency_rank,
    from source
    left join loads using (load_id)
),

final as (
    select
        customer_id,
        signed_up_at,
        nullif(trim(region), '') as region,
        nullif(trim(country), '') as country,
        nullif(lower(trim(gender)), '') as gender,
        birth_year,
        attributes,
        load_id,
        source_file,
        source_line,
    from ranked
    where recency_rank = 1
)

select * from final
