-- Grain: one row per cancelled or returned line of a known customer. The
-- amount is made positive: it is the value that went back to the customer.
create or replace view mkt.int_returns as

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
        abs(quantity) as quantity,
        abs(amount) as returned_amount,
    from order_lines
    where line_status in ('cancellation', 'return')
)

select * from final
