-- Grain: one row per product: the row from the latest load that changed it
-- (later loads win).
create or replace view mkt.stg_products as

with

source as (
    select * from raw.products
),

loads as (
    select load_id, loaded_at from raw.load_log
),

ranked as (
    select
        source.*,
        row_number() over (
            partition by product_id
            order by loads.loaded_at desc nulls last, source.source_line desc
        ) as recency_rank,
    from source
    left join loads using (load_id)
),

final as (
    select
        product_id,
        nullif(trim(category), '') as category,
        nullif(trim(description), '') as description,
        unit_price,
        load_id,
        source_file,
        source_line,
    from ranked
    where recency_rank = 1
)

select * from final
