-- Grain: one row per promotion or rollback of a model version, in the order
-- they happened. `duckmkt models rollback` reads it to find the version that
-- was promoted before the current one.
create table if not exists mkt.model_promotions (
    name varchar not null,
    version varchar not null,
    action varchar not null,
    happened_at timestamp not null
)
