-- Grain: one row per customer seen in sales or profiles, as
-- mkt.customer_segments. Sale lines come from the relation that staged_lines
-- names: the staging view by default, or a table with its columns, such as
-- the copy recommend_products cleans once for many queries. segment is the
-- country of the customer's most recent sale, else the profile's country or
-- region, else 'all'.
create or replace macro mkt.customer_segments_from(staged_lines := 'mkt.stg_order_lines') as table

with

sales as (
    select
        customer_id,
        country,
        row_number() over (partition by customer_id order by ordered_at desc, order_id desc) as recency_rank,
    from query_table(staged_lines)
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
