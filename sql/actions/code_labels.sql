-- Grain: one row per (kind, code), with the English and Simplified Chinese
-- label of a stable code that SQL results show. The kinds are strategy,
-- channel and action (of mkt.strategy_rules), recommendation_reason (of
-- recommend_products), drift_status (of mkt.drift_report) and line_status (of
-- mkt.stg_order_lines). Strategy labels are read from mkt.strategy_rules, so
-- an edited label shows here. Join on (kind, code) and pick label_en or
-- label_zh, because the codes stay English.
create or replace view mkt.code_labels as

with

rules as (
    select * from mkt.strategy_rules
),

strategy_labels as (
    select
        'strategy' as kind,
        code,
        label_en,
        label_zh,
    from rules
),

fixed_labels as (
    select *
    from (
        values
            ('channel', 'phone', 'Phone', '电话'),
            ('channel', 'account_manager', 'Account manager', '客户经理'),
            ('channel', 'email', 'E-mail', '电子邮件'),
            ('channel', 'display_ads', 'Display ads', '展示广告'),
            ('channel', 'none', 'No channel', '无渠道'),
            ('action', 'retention_offer', 'Retention offer', '挽留优惠'),
            ('action', 'priority_service', 'Priority service', '优先服务'),
            ('action', 'recommend_products', 'Product recommendations', '商品推荐'),
            ('action', 'personalized_offer', 'Personalized offer', '个性化优惠'),
            ('action', 'no_contact', 'No contact', '不触达'),
            ('recommendation_reason', 'bought_before', 'Bought before', '曾经购买'),
            ('recommendation_reason', 'similar_to_history', 'Similar to past purchases', '与历史购买相似'),
            ('recommendation_reason', 'popular_in_segment', 'Popular in the segment', '客户分群内热销'),
            ('drift_status', 'stable', 'Stable', '稳定'),
            ('drift_status', 'moderate', 'Moderate shift', '中等偏移'),
            ('drift_status', 'significant', 'Significant shift', '显著偏移'),
            ('drift_status', 'calendar', 'Moves with the calendar', '随日历变化'),
            ('drift_status', 'not_monitored', 'Not monitored', '未监控'),
            ('line_status', 'sale', 'Product sale', '商品销售'),
            ('line_status', 'duplicate', 'Exact duplicate', '完全重复'),
            ('line_status', 'invalid', 'Invalid value', '无效值'),
            ('line_status', 'missing_customer', 'No customer id', '无客户 ID'),
            ('line_status', 'cancellation', 'Cancellation', '取消'),
            ('line_status', 'return', 'Return', '退货'),
            ('line_status', 'non_product', 'Postage, fee or adjustment', '邮费、手续费或调整项'),
            ('line_status', 'zero_price', 'Zero or negative price', '零价或负价')
    ) as seed (kind, code, label_en, label_zh)
),

final as (
    select * from strategy_labels
    union all by name
    select * from fixed_labels
)

select * from final
