-- Grain: one row per customer with at least one sale before `cutoff`.
-- Point in time: every input is filtered with `ordered_at < cutoff`, so no
-- row at or after the cutoff can change a feature. Durations are in days
-- (fractional), money in the currency of unit_price. A feature that is
-- undefined for a customer (mean_days_between_orders with one order) is NULL
-- and the model imputes it.
-- Performance: DuckDB expands every view a query names on its own, so reading
-- mkt.int_orders, mkt.int_sales and mkt.int_returns here would clean the order
-- lines three times. The macro reads the kept lines of mkt.stg_order_lines once
-- into a materialized CTE and builds sales, orders and returns from it, with
-- the same definitions as those views (tests/test_features.py checks that).
-- staged_lines names the relation of staged order lines to read: the staging
-- view unless the caller gives a table with its columns, as a training run
-- does to clean the lines once for all its cutoffs.
create or replace macro mkt.customer_features_at(cutoff, staged_lines := 'mkt.stg_order_lines') as table

with

-- The stored copy keeps a boolean instead of the status text, which is
-- smaller to write for every line.
order_lines as materialized (
    select
        customer_id,
        order_id,
        ordered_at,
        product_id,
        quantity,
        amount,
        line_status = 'sale' as is_sale,
    from query_table(staged_lines)
    where line_status in ('sale', 'cancellation', 'return')
        and ordered_at < cutoff::timestamp
),

-- As mkt.int_sales.
sales as (
    select * from order_lines
    where is_sale
),

-- As mkt.int_orders: an order is timed by its first line.
orders as (
    select
        customer_id,
        order_id,
        sum(amount) as order_value,
        sum(quantity) as n_items,
        (epoch(any_value(cutoff::timestamp)) - epoch(min(ordered_at))) / 86400.0 as days_before_cutoff,
    from sales
    group by customer_id, order_id
),

-- As mkt.int_returns: the value that went back to the customer.
returns as (
    select
        customer_id,
        order_id,
        abs(amount) as returned_amount,
    from order_lines
    where not is_sale
),

-- Browsing, interaction and profile features; the macro applies the same
-- point-in-time rule.
event_features as (
    select * from mkt.event_features_at(cutoff)
),

-- Whether the shop tracks browsing and interactions at all before the
-- cutoff: if so, a customer without such rows gets a count of 0, else NULL.
tracking as (
    select
        exists (select 1 from mkt.stg_events where event_at < cutoff::timestamp) as has_events,
        exists (select 1 from mkt.stg_interactions where occurred_at < cutoff::timestamp) as has_interactions,
),

view_conversions as (
    select
        first_views.customer_id,
        count(*) as n_viewed_products,
        count(*) filter (
            where exists (
                select 1
                from sales
                where sales.customer_id = first_views.customer_id
                    and sales.product_id = first_views.product_id
                    and sales.ordered_at >= first_views.first_viewed_at
            )
        ) as n_viewed_products_bought,
    from mkt.first_product_views_at(cutoff) as first_views
    group by first_views.customer_id
),

order_stats as (
    select
        customer_id,
        min(days_before_cutoff) as recency_days,
        max(days_before_cutoff) as tenure_days,
        count(*) as frequency,
        sum(order_value) as monetary_value,
        avg(order_value) as avg_order_value,
        max(order_value) as max_order_value,
        avg(n_items) as avg_items_per_order,
        -- The sums of the order sums are the sums over the sale lines, exactly,
        -- because amounts are DECIMAL.
        sum(order_value) / nullif(sum(n_items), 0) as avg_unit_price,
        count(*) filter (where days_before_cutoff <= 30) as n_orders_30d,
        count(*) filter (where days_before_cutoff <= 90) as n_orders_90d,
        coalesce(sum(order_value) filter (where days_before_cutoff <= 30), 0) as spend_30d,
        coalesce(sum(order_value) filter (where days_before_cutoff <= 90), 0) as spend_90d,
        coalesce(sum(order_value) filter (where days_before_cutoff <= 180), 0) as spend_180d,
    from orders
    group by customer_id
),

-- Counting distinct products groups the sales by customer and product, the
-- largest grouping of the macro, so it computes nothing else.
product_stats as (
    select
        customer_id,
        count(distinct product_id) as n_products,
    from sales
    group by customer_id
),

return_stats as (
    select
        customer_id,
        count(distinct order_id) as n_returns,
        sum(returned_amount) as returned_amount,
    from returns
    group by customer_id
),

final as (
    select
        order_stats.customer_id,
        cutoff::date as cutoff_date,
        recency_days,
        tenure_days,
        frequency::double as frequency,
        monetary_value::double as monetary_value,
        avg_order_value::double as avg_order_value,
        max_order_value::double as max_order_value,
        -- Mean gap between orders; undefined (NULL) for a single order.
        case
            when frequency > 1 then (tenure_days - recency_days) / (frequency - 1)
        end as mean_days_between_orders,
        frequency / greatest(tenure_days, 1.0) * 30.0 as orders_per_month,
        n_orders_30d::double as n_orders_30d,
        n_orders_90d::double as n_orders_90d,
        spend_30d::double as spend_30d,
        spend_90d::double as spend_90d,
        spend_180d::double as spend_180d,
        n_products::double as n_products,
        avg_items_per_order::double as avg_items_per_order,
        avg_unit_price::double as avg_unit_price,
        coalesce(n_returns, 0)::double as n_returns,
        -- Share of bought value that went back; 0 when nothing was returned.
        (coalesce(returned_amount, 0) / (monetary_value + coalesce(returned_amount, 0)))::double as return_rate,
        case when tracking.has_events then coalesce(event_features.n_views, 0) end as n_views,
        case when tracking.has_events then coalesce(event_features.n_add_to_carts, 0) end as n_add_to_carts,
        event_features.n_sessions,
        event_features.days_since_last_view,
        n_viewed_products_bought / nullif(n_viewed_products, 0) as view_to_purchase_rate,
        case when tracking.has_interactions then coalesce(event_features.n_email_opens, 0) end as n_email_opens,
        case when tracking.has_interactions then coalesce(event_features.n_email_clicks, 0) end as n_email_clicks,
        case when tracking.has_interactions then coalesce(event_features.n_contacts, 0) end as n_contacts,
        event_features.days_since_last_contact,
        event_features.age_years,
        event_features.days_since_signup,
    from order_stats
    left join product_stats using (customer_id)
    left join return_stats using (customer_id)
    left join event_features using (customer_id)
    left join view_conversions using (customer_id)
    cross join tracking
)

select * from final
