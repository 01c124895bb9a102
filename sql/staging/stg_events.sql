-- Grain: one row per loaded browsing event. event_type is lowercased with
-- spaces and hyphens turned into underscores ('Add to cart' -> 'add_to_cart').
create or replace view mkt.stg_events as

with

source as (
    select * from raw.events
),

final as (
    select
        load_id,
        source_file,
        source_line,
        trim(customer_id) as customer_id,
        event_at,
        regexp_replace(lower(trim(event_type)), '[ -]+', '_', 'g') as event_type,
        nullif(trim(product_id), '') as product_id,
        nullif(trim(session_id), '') as session_id,
        nullif(lower(trim(channel)), '') as channel,
    from source
)

select * from final
