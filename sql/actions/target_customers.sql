-- Grain: one row per customer chosen for a contact, in the order they were
-- picked. For every scored customer (mkt.customer_scores) and every action in
-- mkt.action_effects the macro computes
--     expected net value = incremental spend * margin - cost_per_contact * cost_factor
-- where incremental spend is the modeled uplift spend from mkt.customer_uplift
-- when that (customer, action) pair has one, else expected_spend times the
-- action's assumed lift (spend_lift when the action is the one the customer's
-- strategy rule names, off_strategy_lift otherwise). Each customer keeps the
-- action with the highest net value. Customers with a positive net value are
-- taken in descending net value per unit of cost until the next one would
-- exceed `budget`. This greedy knapsack is optimal when all chosen actions
-- cost the same. Money is in the currency of unit_price; margin is a share of spend.
-- NOTE: the macro trusts the strategy stored in mkt.customer_scores. It does
-- not check that the current mkt.strategy_rules assigned it, but `duckmkt
-- target` does, so after a rule edit run `duckmkt score DB` before calling
-- the macro from SQL.
create or replace macro mkt.target_customers(budget, cost_per_contact, margin) as table

with

-- The same checks as `duckmkt target`, so a bad argument is an error and
-- not a plan that picks everyone or no one.
checked_arguments as (
    select
        case
            when budget is null or budget::double < 0
                then error('mkt.target_customers: budget is ' || coalesce(budget::varchar, 'NULL') || '; it must be 0 or more.')
            when cost_per_contact is null or cost_per_contact::double <= 0
                then error('mkt.target_customers: cost_per_contact is ' || coalesce(cost_per_contact::varchar, 'NULL') || '; it must be more than 0.')
            when margin is null or margin::double <= 0 or margin::double > 1
                then error('mkt.target_customers: margin is ' || coalesce(margin::varchar, 'NULL') || '; it must be a share of spend in (0, 1], for example 0.3.')
            else true
        end as is_valid,
),

scores as (
    select * from mkt.customer_scores
),

rules as (
    select code, action as strategy_action from mkt.strategy_rules
),

effects as (
    select * from mkt.action_effects
),

uplift as (
    select customer_id, action, incremental_spend from mkt.customer_uplift
),

candidates as (
    select
        scores.customer_id,
        scores.strategy,
        effects.action,
        scores.expected_spend,
        effects.action = rules.strategy_action as is_strategy_action,
        case when effects.action = rules.strategy_action then effects.spend_lift else effects.off_strategy_lift end as assumed_lift,
        uplift.incremental_spend as uplift_spend,
        cost_per_contact::double * effects.cost_factor as contact_cost,
    from scores
    cross join checked_arguments
    cross join effects
    left join rules on rules.code = scores.strategy
    left join uplift on uplift.customer_id = scores.customer_id and uplift.action = effects.action
    where scores.expected_spend is not null and checked_arguments.is_valid
),

valued as (
    select
        *,
        coalesce(uplift_spend, expected_spend * assumed_lift) as incremental_spend,
        case
            when uplift_spend is not null then 'uplift_model'
            when is_strategy_action then 'strategy_action'
            else 'other_action'
        end as reason,
    from candidates
),

netted as (
    select
        *,
        incremental_spend * margin::double - contact_cost as expected_net_value,
    from valued
),

best_action as (
    select *
    from netted
    qualify row_number() over (partition by customer_id order by expected_net_value desc, action) = 1
),

ranked as (
    select
        *,
        sum(contact_cost) over (
            order by expected_net_value / contact_cost desc, customer_id
            rows between unbounded preceding and current row
        ) as cumulative_cost,
        row_number() over (order by expected_net_value / contact_cost desc, customer_id) as pick_order,
    from best_action
    where expected_net_value > 0
),

final as (
    select
        pick_order,
        customer_id,
        strategy,
        action,
        reason,
        expected_spend,
        incremental_spend,
        contact_cost,
        expected_net_value,
        cumulative_cost,
    from ranked
    -- coalesce keeps the optimizer from proving the result empty for a NULL
    -- budget, which would skip checked_arguments and its error.
    where cumulative_cost <= coalesce(budget::double, 0)
    order by pick_order
)

select * from final
