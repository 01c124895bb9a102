-- Grain: one row per order (customer_id, order_id), as mkt.int_orders.
-- Orders are built from the sale lines of the relation that staged_lines
-- names. That is the staging view by default, or a table with its columns,
-- such as the copy a training run cleans once for all its cutoffs.
-- ordered_at is the time of the order's first line.
create or replace macro mkt.int_orders_from(staged_lines := 'mkt.stg_order_lines') as table

with

sales as (
    select * from query_table(staged_lines)
    where line_status = 'sale'
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
