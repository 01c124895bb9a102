-- Grain: one row per data-quality check on the order lines. The 'status:'
-- rows are exclusive and add up to 'rows_read'; the other rows are flags
-- that may overlap, counted over all raw rows including duplicates.
create or replace view mkt.data_quality as

with

order_lines as (
    select * from mkt.stg_order_lines
),

flag_counts as (
    select
        count(*) as rows_read,
        count(*) filter (where is_duplicate) as exact_duplicates,
        count(*) filter (where is_invalid) as invalid_values,
        count(*) filter (where is_missing_customer) as missing_customer_id,
        count(*) filter (where is_cancellation) as cancellations,
        count(*) filter (where is_negative_quantity) as negative_quantity,
        count(*) filter (where is_zero_price) as zero_unit_price,
        count(*) filter (where is_non_product) as non_product_lines,
        count(distinct order_id) filter (where upper(order_id) like 'A%') as adjustment_orders,
        count(distinct customer_id) as distinct_customers,
        count(distinct customer_id) filter (where line_status = 'sale') as customers_with_sale,
    from order_lines
),

flags as (
    unpivot flag_counts
    on columns(*)
    into name check_name value n_rows
),

statuses as (
    select
        'status:' || line_status as check_name,
        count(*) as n_rows,
    from order_lines
    group by line_status
),

final as (
    select check_name, n_rows from flags
    union all
    select check_name, n_rows from statuses
)

select * from final
