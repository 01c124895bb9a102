-- Grain: one row per loaded marketing contact. channel, interaction_type and
-- outcome are lowercased and trimmed so 'E-mail' and 'email' compare equal.
create or replace view mkt.stg_interactions as

with

source as (
    select * from raw.interactions
),

final as (
    select
        load_id,
        source_file,
        source_line,
        trim(customer_id) as customer_id,
        occurred_at,
        regexp_replace(lower(trim(channel)), '[ -]+', '', 'g') as channel,
        trim(campaign_id) as campaign_id,
        regexp_replace(lower(trim(interaction_type)), '[ -]+', '_', 'g') as interaction_type,
        lower(trim(outcome)) as outcome,
        treatment,
    from source
)

select * from final
