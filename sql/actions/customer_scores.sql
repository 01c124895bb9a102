-- Grain: one row per customer with the latest scores. `duckmkt score`
-- replaces this table in one statement; this empty definition only lets the
-- views that read it (mkt.strategy_summary, mkt.target_customers) be created
-- before the first scoring run.
create table if not exists mkt.customer_scores (
    customer_id varchar,
    cutoff_date date,
    purchase_prob double,
    expected_spend double,
    churn_risk double,
    strategy varchar,
    model_version varchar,
    scored_at timestamp
);
