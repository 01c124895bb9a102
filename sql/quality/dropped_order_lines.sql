-- Grain: one row per raw order line that no purchase feature uses, with the
-- reason. Cancellations and returns are listed too: they only feed the
-- return rate. Together with mkt.int_sales this accounts for every raw row.
create or replace view mkt.dropped_order_lines as

with

order_lines as (
    select * from mkt.stg_order_lines
),

final as (
    select
        source_file,
        source_line,
        line_status as reason,
        customer_id,
        order_id,
        product_id,
    from order_lines
    where line_status <> 'sale'
)

select * from final
