-- Grain: one row per customer with at least one sale before `cutoff`.
-- The summary the "buy till you die" models (BG/NBD, Gamma-Gamma) read:
-- orders on the same day count as one transaction, as in the BG/NBD
-- literature. Durations are in weeks. frequency counts repeat purchase days
-- (days with a sale minus 1), recency_weeks runs from the first to the latest
-- purchase day, T_weeks from the first purchase day to the cutoff, and
-- monetary_value is the mean spend of a repeat purchase day (0 without one).
-- Only sales before the cutoff are read.
create or replace macro mkt.btyd_summary_at(cutoff) as table

with

orders as (
    select * from mkt.int_orders
    where ordered_at < cutoff::timestamp
),

purchase_days as (
    select
        customer_id,
        ordered_at::date as purchase_day,
        sum(order_value) as day_value,
    from orders
    group by customer_id, ordered_at::date
),

ranked_days as (
    select
        *,
        row_number() over (partition by customer_id order by purchase_day) as day_number,
    from purchase_days
),

customer_days as (
    select
        customer_id,
        count(*) - 1 as frequency,
        min(purchase_day) as first_day,
        max(purchase_day) as last_day,
        coalesce(avg(day_value) filter (where day_number > 1), 0) as monetary_value,
    from ranked_days
    group by customer_id
),

final as (
    select
        customer_id,
        cutoff::date as cutoff_date,
        frequency::double as frequency,
        (last_day - first_day) / 7.0 as recency_weeks,
        (cutoff::date - first_day) / 7.0 as T_weeks,
        monetary_value::double as monetary_value,
    from customer_days
)

select * from final
