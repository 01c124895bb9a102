-- Grain: one row per strategy rule. Rules are checked in ascending priority
-- and the first whose condition is true gives the customer's strategy code;
-- no match gives NULL. Analysts edit this table with SQL or `duckmkt
-- strategy set|reset`. score_customer reads it on every batch.
-- mkt.assign_strategy raises an error after an SQL edit until `duckmkt
-- strategy compile` (or duckmkt.strategy.compile_rules) has compiled it.
-- Installing the views again only seeds the table when it is empty.
create table if not exists mkt.strategy_rules (
    priority integer primary key,
    code varchar not null unique,
    condition varchar not null,
    label_en varchar not null,
    label_zh varchar not null,
    channel varchar not null,
    action varchar not null,
    rationale varchar not null
);

insert into mkt.strategy_rules
select * from mkt.default_strategy_rules
where not exists (select 1 from mkt.strategy_rules);
