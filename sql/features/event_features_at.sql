-- Grain: one row per customer known before `cutoff` from browsing events,
-- interactions or profiles. Point in time: events and interactions are
-- filtered with `< cutoff`, and a profile counts only when its customer
-- signed up before the cutoff (or has no sign-up date).
-- Counts are NULL for a customer without rows in their source. The macro
-- mkt.customer_features_at turns them into 0 when the shop tracks that source
-- (it has rows before the cutoff), because it also covers customers known
-- only from sales. Recencies are in days (fractional). Sales are not read
-- here: mkt.customer_features_at computes the view-to-purchase rate, because
-- it reads the order lines once for all features.
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

profiles as (
    select * from mkt.stg_customers
    where signed_up_at is null or signed_up_at < cutoff::timestamp
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
    select customer_id from events
    union
    select customer_id from interactions
    union
    select customer_id from profiles
),

final as (
    select
        customer_ids.customer_id,
        n_views::double as n_views,
        n_add_to_carts::double as n_add_to_carts,
        -- Undefined when none of the customer's events carries a session id.
        case when n_events_with_session > 0 then n_sessions::double end as n_sessions,
        days_since_last_view,
        n_email_opens::double as n_email_opens,
        n_email_clicks::double as n_email_clicks,
        n_contacts::double as n_contacts,
        days_since_last_contact,
        (year(cutoff::date) - profiles.birth_year)::double as age_years,
        (epoch(cutoff::timestamp) - epoch(profiles.signed_up_at)) / 86400.0 as days_since_signup,
    from customer_ids
    left join event_stats using (customer_id)
    left join interaction_stats using (customer_id)
    left join profiles using (customer_id)
)

select * from final
