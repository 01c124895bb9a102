-- Grain: one row per rule threshold name. The values are quantiles of one
-- model's predictions on its validation rows, copied from the model metadata
-- when the rules are compiled; model_version names that model.
create table if not exists mkt.strategy_thresholds (
    name varchar primary key,
    prediction varchar not null,
    quantile double not null,
    value double not null,
    model_version varchar not null
);
