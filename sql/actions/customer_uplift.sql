-- Grain: one row per customer and campaign action scored by `duckmkt uplift`.
-- uplift is the modeled increase in the probability of a purchase within the
-- campaign horizon when contacted (treatment response minus control
-- response); incremental_spend is uplift times the customer's mean order
-- value. mkt.target_customers uses incremental_spend for (customer, action)
-- pairs found here instead of the assumed lift of mkt.action_effects.
create table if not exists mkt.customer_uplift (
    customer_id varchar not null,
    action varchar not null,
    response_treated double,
    response_control double,
    uplift double,
    incremental_spend double,
    model_version varchar,
    scored_at timestamp,
    primary key (customer_id, action)
);
