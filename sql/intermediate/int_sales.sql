-- Grain: one row per product sale line of a known customer. Duplicates,
-- invalid lines, cancellations, returns, non-product and zero-price lines are
-- left out (mkt.dropped_order_lines lists them with their reason).
create or replace view mkt.int_sales as

with

order_lines as (
    select * from mkt.stg_order_lines
),

final as (
    select
        customer_id,
        order_id,
        ordered_at,
        product_id,
        quantity,
        unit_price,
        amount,
    from order_lines
    where line_status = 'sale'
)

select * from final
