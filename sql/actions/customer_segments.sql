-- Grain: one row per customer seen in sales or profiles. segment is the
-- country of the customer's most recent sale, else the profile's country or
-- region, else 'all'. Product recommendations fall back to the popular
-- products of this segment for customers without a usable history. The
-- definition is mkt.customer_segments_from, here over the staging view.
create or replace view mkt.customer_segments as

with

segments as (
    select * from mkt.customer_segments_from('mkt.stg_order_lines')
),

final as (
    select
        customer_id,
        segment,
    from segments
)

select * from final
