-- Grain: one row per customer known before `cutoff` from sales, browsing
-- events, interactions or profiles. Point in time: events, interactions and
-- sales are filtered with `< cutoff`, and a profile counts only when its
-- customer signed up before the cutoff (or has no sign-up date).
-- Counts are NULL when the whole source has no row before the cutoff (the
-- shop does not track it) and 0 when it does but not for this customer.
-- Recencies are in days (fractional); rates are NULL with a zero denominator.
-- NOTE: profiles are the latest snapshot with no history. Only birth_year and
-- signed_up_at are used because they should not change; a later snapshot
-- that corrects them still changes features of earlier cutoffs.
create or replace macro mkt.event_features_at(cutoff) as table

with

events as (
    select
        *,
        (epoch(cutoff::timestamp) - epoch(event_at)) / 86400.0 as days_before_cutoff,
    from mkt.stg_events
    where event_at < cutoff::timestamp
),

interactions as (
    select
        *,
        (epoch(cutoff::timestamp) - epoch(occurred_at)) / 86400.0 as days_before_cutoff,
    from mkt.stg_interactions
    where occurred_at < cutoff::timestamp
),

sales as (
    select * from mkt.int_sales
    where ordered_at < cutoff::timestamp
),

profiles as (
    select * from mkt.stg_customers
    where signed_up_at is null or signed_up_at < cutoff::timestamp
),

tracking as (
    select
        exists (select 1 from events) as has_events,
        exists (select 1 from interactions) as has_interactions,
),

event_stats as (
    select
        customer_id,
        count(*) filter (where event_type = 'view') as n_views,
        count(*) filter (where event_type = 'add_to_cart') as n_add_to_carts,
        count(distinct session_id) as n_sessions,
        count(session_id) as n_events_with_session,
        min(days_before_cutoff) filter (where event_type = 'view') as days_since_last_view,
    from events
    group by customer_id
),

first_views as (
    select
        customer_id,
        product_id,
        min(event_at) as first_viewed_at,
    from events
    where event_type = 'view' and product_id is not null
    group by customer_id, product_id
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
    from first_views
    group by first_views.customer_id
),

interaction_stats as (
    select
        customer_id,
        count(*) filter (where channel = 'email' and interaction_type = 'open') as n_email_opens,
        count(*) filter (where channel = 'email' and interaction_type = 'click') as n_email_clicks,
        count(*) as n_contacts,
        min(days_before_cutoff) as days_since_last_contact,
    from interactions
    group by customer_id
),

customer_ids as (
    select customer_id from sales
    union
    select customer_id from events
    union
    select customer_id from interactions
    union
    select customer_id from profiles
),

final as (
    select
        customer_ids.customer_id,
        case when tracking.has_events then coalesce(n_views, 0)::double end as n_views,
        case when tracking.has_events then coalesce(n_add_to_carts, 0)::double end as n_add_to_carts,
        -- Undefined when none of the customer's events carries a session id.
        case when n_events_with_session > 0 then n_sessions::double end as n_sessions,
        days_since_last_view,
        n_viewed_products_bought / nullif(n_viewed_products, 0) as view_to_purchase_rate,
        case when tracking.has_interactions then coalesce(n_email_opens, 0)::double end as n_email_opens,
        case when tracking.has_interactions then coalesce(n_email_clicks, 0)::double end as n_email_clicks,
        case when tracking.has_interactions then coalesce(n_contacts, 0)::double end as n_contacts,
        days_since_last_contact,
        (year(cutoff::date) - profiles.birth_year)::double as age_years,
        (epoch(cutoff::timestamp) - epoch(profiles.signed_up_at)) / 86400.0 as days_since_signup,
    from customer_ids
    cross join tracking
    left join event_stats using (customer_id)
    left join view_conversions using (customer_id)
    left join interaction_stats using (customer_id)
    left join profiles using (customer_id)
)

select * from final
