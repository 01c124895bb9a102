-- Grain: one row per strategy code found in mkt.customer_scores (a code no
-- longer in mkt.strategy_rules keeps its row with empty labels). Customers,
-- expected spend and churn risk per strategy, with the rule's labels, channel
-- and action; 'unassigned' counts customers no rule matched.
create or replace view mkt.strategy_summary as

with

scores as (
    select * from mkt.customer_scores
),

rules as (
    select * from mkt.strategy_rules
),

per_strategy as (
    select
        coalesce(strategy, 'unassigned') as strategy,
        count(*) as n_customers,
        avg(purchase_prob) as avg_purchase_prob,
        sum(expected_spend) as total_expected_spend,
        avg(expected_spend) as avg_expected_spend,
        avg(churn_risk) as avg_churn_risk,
    from scores
    group by all
),

final as (
    select
        per_strategy.strategy,
        rules.priority,
        rules.label_en,
        rules.label_zh,
        rules.channel,
        rules.action,
        per_strategy.n_customers,
        per_strategy.avg_purchase_prob,
        per_strategy.total_expected_spend,
        per_strategy.avg_expected_spend,
        per_strategy.avg_churn_risk,
    from per_strategy
    left join rules on rules.code = per_strategy.strategy
    order by per_strategy.n_customers desc, per_strategy.strategy
)

select * from final
