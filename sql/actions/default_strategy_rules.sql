-- Grain: one row per shipped strategy rule, in priority order (lowest first).
-- `duckmkt strategy reset` copies these rows into mkt.strategy_rules. A
-- condition is a DuckDB boolean expression over the predictions
-- (purchase_prob, expected_spend, churn_risk), the customer features and the
-- threshold names of mkt.strategy_thresholds. The thresholds are quantiles of
-- the predictions (and of monetary_value) on the model's validation rows (see
-- docs/strategies.md). Retention measures value by past spend, because a
-- customer likely to churn is also predicted to spend almost nothing.
create or replace view mkt.default_strategy_rules as

with

rules as (
    select *
    from (
        values
            (
                10,
                'retention',
                'churn_risk >= churn_risk_high and monetary_value >= monetary_value_median',
                'Retention',
                '客户挽留',
                'phone',
                'retention_offer',
                'A valuable customer about to leave is worth a personal retention offer before anything else.'
            ),
            (
                20,
                'tailored_service',
                'expected_spend >= expected_spend_top',
                'Tailored service',
                '专属服务',
                'account_manager',
                'priority_service',
                'The biggest spenders get priority service and a personal contact rather than more advertising.'
            ),
            (
                30,
                'product_recommendation',
                'purchase_prob >= purchase_prob_median',
                'Product recommendation',
                '商品推荐',
                'email',
                'recommend_products',
                'A customer likely to buy soon responds to products matched to past purchases.'
            ),
            (
                40,
                'personalized_ad',
                'purchase_prob >= purchase_prob_low',
                'Personalized ad',
                '个性化广告',
                'display_ads',
                'personalized_offer',
                'A lukewarm customer needs a reason to come back: a personalized ad or offer.'
            ),
            (
                50,
                'no_action',
                'true',
                'No action',
                '暂不营销',
                'none',
                'no_contact',
                'A low chance of buying and low value do not pay for a paid contact.'
            )
    ) as seed (priority, code, condition, label_en, label_zh, channel, action, rationale)
),

final as (
    select
        priority::integer as priority,
        code,
        condition,
        label_en,
        label_zh,
        channel,
        action,
        rationale,
    from rules
)

select * from final
