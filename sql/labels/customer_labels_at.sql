-- Grain: one row per customer with at least one sale before `cutoff` (the
-- same customers as mkt.customer_features_at(cutoff)). Labels look forward
-- only: purchased and spend over [cutoff, cutoff + horizon_days), churned
-- when there is no sale in [cutoff, cutoff + churn_horizon_days).
create or replace macro mkt.customer_labels_at(
    cutoff, horizon_days, churn_horizon_days, staged_lines := 'mkt.stg_order_lines'
) as table

with

-- Materialized because two steps below read it.
orders as materialized (
    select * from mkt.int_orders_from(staged_lines)
),

active as (
    select distinct customer_id
    from orders
    where ordered_at < cutoff::timestamp
),

future as (
    select
        customer_id,
        count(*) filter (
            where ordered_at < cutoff::timestamp + to_days(horizon_days::integer)
        ) as n_orders_horizon,
        coalesce(sum(order_value) filter (
            where ordered_at < cutoff::timestamp + to_days(horizon_days::integer)
        ), 0) as spend_horizon,
    from orders
    where ordered_at >= cutoff::timestamp
        and ordered_at < cutoff::timestamp + to_days(churn_horizon_days::integer)
    group by customer_id
),

final as (
    select
        active.customer_id,
        cutoff::date as cutoff_date,
        coalesce(n_orders_horizon, 0) as n_orders_horizon,
        (coalesce(n_orders_horizon, 0) > 0)::integer as purchased,
        coalesce(spend_horizon, 0)::double as spend,
        (future.customer_id is null)::integer as churned,
    from active
    left join future using (customer_id)
)

select * from final
