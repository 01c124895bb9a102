-- Grain: one row per order (customer_id, order_id) built from sale lines.
-- ordered_at is the time of the order's first line. The definition is
-- mkt.int_orders_from, here over the staging view.
create or replace view mkt.int_orders as

with

orders as (
    select * from mkt.int_orders_from('mkt.stg_order_lines')
),

final as (
    select
        customer_id,
        order_id,
        ordered_at,
        order_value,
        n_items,
        n_lines,
    from orders
)

select * from final
