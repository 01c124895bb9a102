-- Grain: one row per customer and viewed product, with the time of the first
-- view before `cutoff`. mkt.customer_features_at compares it with the
-- customer's purchases for the view-to-purchase rate.
create or replace macro mkt.first_product_views_at(cutoff) as table

with

events as (
    select * from mkt.stg_events
    where event_at < cutoff::timestamp
),

final as (
    select
        customer_id,
        product_id,
        min(event_at) as first_viewed_at,
    from events
    where event_type = 'view' and product_id is not null
    group by customer_id, product_id
)

select * from final
