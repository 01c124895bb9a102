-- Grain: one row per customer with at least one sale before `cutoff`.
-- n_purchase_days counts the distinct days with a sale in
-- [cutoff, cutoff + horizon_days): the "purchases" that BG/NBD counts, so
-- several orders on one day are one purchase. Looks forward only.
create or replace macro mkt.purchase_days_at(cutoff, horizon_days, staged_lines := 'mkt.stg_order_lines') as table

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

future_days as (
    select
        customer_id,
        count(distinct ordered_at::date) as n_purchase_days,
    from orders
    where ordered_at >= cutoff::timestamp
        and ordered_at < cutoff::timestamp + to_days(horizon_days::integer)
    group by customer_id
),

final as (
    select
        active.customer_id,
        cutoff::date as cutoff_date,
        coalesce(n_purchase_days, 0)::double as n_purchase_days,
    from active
    left join future_days using (customer_id)
)

select * from final
