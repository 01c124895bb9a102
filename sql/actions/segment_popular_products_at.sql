-- Grain: one row per segment and product bought in the `window_days` before
-- `cutoff`, plus the segment 'all' for every customer. popularity is the
-- number of distinct customers who bought the product in the window;
-- popularity_rank is 1 for the most popular product of the segment.
-- staged_lines names the relation of staged order lines to read, as in
-- mkt.product_history_at.
create or replace macro mkt.segment_popular_products_at(cutoff, window_days, staged_lines := 'mkt.stg_order_lines') as table

with

-- As mkt.int_sales.
sales as (
    select customer_id, product_id
    from query_table(staged_lines)
    where line_status = 'sale'
      and ordered_at < cutoff::timestamp
      and ordered_at >= cutoff::timestamp - to_days(window_days::integer)
),

segments as (
    select * from mkt.customer_segments_from(staged_lines)
),

per_segment as (
    select segments.segment, sales.product_id, count(distinct sales.customer_id) as popularity,
    from sales
    join segments using (customer_id)
    group by all
),

overall as (
    select 'all' as segment, product_id, count(distinct customer_id) as popularity,
    from sales
    group by all
),

combined as (
    select * from per_segment where segment <> 'all'
    union all
    select * from overall
),

final as (
    select
        segment,
        product_id,
        popularity,
        row_number() over (partition by segment order by popularity desc, product_id) as popularity_rank,
    from combined
)

select * from final
