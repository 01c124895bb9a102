-- Grain: one row. md5 of every rule's priority, code and condition in priority
-- order, so the compiled mkt.assign_strategy macro can tell when
-- mkt.strategy_rules changed after it was compiled.
create or replace view mkt.strategy_rules_fingerprint as

with

rules as (
    select * from mkt.strategy_rules
),

final as (
    select
        md5(coalesce(string_agg(priority::varchar || chr(31) || code || chr(31) || condition, chr(30) order by priority), '')) as fingerprint,
    from rules
)

select * from final
