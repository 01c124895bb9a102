-- Grain: one row per customer with at least one sale before `cutoff`.
-- Point in time: every input is filtered with `ordered_at < cutoff`, so no
-- row at or after the cutoff can change a feature. Durations are in days
-- (fractional), money in the currency of unit_price. A feature that is
-- undefined for a customer (mean_days_between_orders with one order) is NULL
-- and the model imputes it.
create or replace macro mkt.customer_features_at(cutoff) as table

with

orders as (
    select
        *,
        (epoch(cutoff::timestamp) - epoch(ordered_at)) / 86400.0 as days_before_cutoff,
    from mkt.int_orders
    where ordered_at < cutoff::timestamp
),

sales as (
    select * from mkt.int_sales
    where ordered_at < cutoff::timestamp
),

returns as (
    select * from mkt.int_returns
    where ordered_at < cutoff::timestamp
),

-- Browsing, interaction and profile features; the macro applies the same
-- point-in-time rule and returns NULLs when those tables are empty.
event_features as (
    select * from mkt.event_features_at(cutoff)
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
        count(*) filter (where days_before_cutoff <= 30) as n_orders_30d,
        count(*) filter (where days_before_cutoff <= 90) as n_orders_90d,
        coalesce(sum(order_value) filter (where days_before_cutoff <= 30), 0) as spend_30d,
        coalesce(sum(order_value) filter (where days_before_cutoff <= 90), 0) as spend_90d,
        coalesce(sum(order_value) filter (where days_before_cutoff <= 180), 0) as spend_180d,
    from orders
    group by customer_id
),

product_stats as (
    select
        customer_id,
        count(distinct product_id) as n_products,
        sum(amount) / nullif(sum(quantity), 0) as avg_unit_price,
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
        event_features.n_views,
        event_features.n_add_to_carts,
        event_features.n_sessions,
        event_features.days_since_last_view,
        event_features.view_to_purchase_rate,
        event_features.n_email_opens,
        event_features.n_email_clicks,
        event_features.n_contacts,
        event_features.days_since_last_contact,
        event_features.age_years,
        event_features.days_since_signup,
    from order_stats
    left join product_stats using (customer_id)
    left join return_stats using (customer_id)
    left join event_features using (customer_id)
)

select * from final
