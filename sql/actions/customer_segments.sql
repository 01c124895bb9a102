-- Grain: one row per customer seen in sales or profiles. segment is the
-- country of the customer's most recent sale, else the profile's country or
-- region, else 'all'. Product recommendations fall back to the popular
-- products of this segment for customers without a usable history.
create or replace view mkt.customer_segments as

with

sales as (
    select
        customer_id,
        country,
        row_number() over (partition by customer_id order by ordered_at desc, order_id desc) as recency_rank,
    from mkt.stg_order_lines
    where line_status = 'sale' and country is not null
),

profiles as (
    select customer_id, coalesce(country, region) as profile_segment
    from mkt.stg_customers
),

latest_sale as (
    select customer_id, country as sale_segment
    from sales
    where recency_rank = 1
),

final as (
    select
        customer_id,
        coalesce(latest_sale.sale_segment, profiles.profile_segment, 'all') as segment,
    from latest_sale
    full outer join profiles using (customer_id)
)

select * from final
