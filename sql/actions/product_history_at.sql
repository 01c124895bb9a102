-- Grain: one row per customer and product with a sale (or, when browsing is
-- loaded, a product view or add-to-cart) before `cutoff`. Point in time: only
-- rows before the cutoff count. Each order containing the product adds
-- 0.5 ^ (age in days / half_life_days) to purchase_weight, so recent orders
-- weigh more; each browsing event adds the same decay to view_weight.
-- order_count is the number of orders containing the product (0 when the
-- product was only browsed) and last_bought_at the time of the latest one.
-- Non-product codes never appear, because their lines never have the status
-- 'sale', and browsed codes are matched against mkt.non_product_codes here.
-- staged_lines names the relation of staged order lines to read: the staging
-- view unless the caller gives a table with its columns, as recommend_products
-- does to clean the lines once for many queries.
create or replace macro mkt.product_history_at(cutoff, half_life_days, staged_lines := 'mkt.stg_order_lines') as table

with

-- As mkt.int_sales.
sales as (
    select distinct customer_id, product_id, order_id, ordered_at
    from query_table(staged_lines)
    where line_status = 'sale'
      and ordered_at < cutoff::timestamp
),

events as (
    select customer_id, product_id, event_at
    from mkt.stg_events
    where event_at < cutoff::timestamp
      and product_id is not null
      and event_type in ('view', 'product_view', 'page_view', 'add_to_cart')
      and not exists (
          select 1
          from mkt.non_product_codes as codes
          where regexp_full_match(upper(stg_events.product_id), upper(codes.pattern))
      )
),

purchases as (
    select
        customer_id,
        product_id,
        sum(pow(0.5, (epoch(cutoff::timestamp) - epoch(ordered_at)) / 86400.0 / half_life_days)) as purchase_weight,
        count(*) as order_count,
        max(ordered_at) as last_bought_at,
    from sales
    group by customer_id, product_id
),

views as (
    select
        customer_id,
        product_id,
        sum(pow(0.5, (epoch(cutoff::timestamp) - epoch(event_at)) / 86400.0 / half_life_days)) as view_weight,
    from events
    group by customer_id, product_id
),

final as (
    select
        customer_id,
        product_id,
        coalesce(purchases.purchase_weight, 0.0) as purchase_weight,
        coalesce(views.view_weight, 0.0) as view_weight,
        coalesce(purchases.order_count, 0) as order_count,
        purchases.last_bought_at,
    from purchases
    full outer join views using (customer_id, product_id)
)

select * from final
