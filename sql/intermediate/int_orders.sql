-- Grain: one row per order (customer_id, order_id) built from sale lines.
-- ordered_at is the time of the order's first line.
create or replace view mkt.int_orders as

with

sales as (
    select * from mkt.int_sales
),

final as (
    select
        customer_id,
        order_id,
        min(ordered_at) as ordered_at,
        sum(amount) as order_value,
        sum(quantity) as n_items,
        count(*) as n_lines,
    from sales
    group by customer_id, order_id
)

select * from final
