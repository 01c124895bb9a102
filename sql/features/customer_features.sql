-- Grain: one row per customer, as of the day after the latest sale in the
-- data, so every loaded sale is included. Use mkt.customer_features_at(DATE)
-- for any other cutoff.
create or replace view mkt.customer_features as

with

latest as (
    select max(ordered_at)::date + interval 1 day as cutoff
    from mkt.int_orders
),

final as (
    select * from mkt.customer_features_at((select cutoff from latest))
)

select * from final
