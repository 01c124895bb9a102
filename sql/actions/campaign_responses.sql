-- Grain: one row per customer and campaign with a treatment flag (contacted
-- or control group). contacted_at is the customer's first interaction of the
-- campaign; responded is true when any interaction of the customer in the
-- campaign has a positive outcome ('yes', 'purchase', 'purchased',
-- 'converted', 'subscribed', 'response' or 'responded'). Rows without a
-- treatment flag are not part of a controlled campaign and are left out.
create or replace view mkt.campaign_responses as

with

interactions as (
    select * from mkt.stg_interactions
    where treatment is not null
),

final as (
    select
        customer_id,
        campaign_id,
        min(occurred_at) as contacted_at,
        bool_or(treatment) as treatment,
        bool_or(outcome in ('yes', 'purchase', 'purchased', 'converted', 'subscribed', 'response', 'responded')) as responded,
    from interactions
    group by customer_id, campaign_id
)

select * from final
