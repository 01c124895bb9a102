-- Grain: one row per marketing action. The assumed response to a contact:
-- spend_lift is the share by which the action raises the customer's
-- expected_spend over the scoring horizon when the action is the one the
-- customer's strategy rule names, off_strategy_lift when it is not;
-- cost_factor multiplies the cost per contact (a phone call costs more than
-- an e-mail). The seeded values are planning assumptions, not measurements:
-- replace them with the lifts measured in your own campaigns (for example
-- with `duckmkt uplift`). Installing the views again only seeds the table
-- when it is empty.
create table if not exists mkt.action_effects (
    action varchar primary key,
    spend_lift double not null check (spend_lift >= 0),
    off_strategy_lift double not null check (off_strategy_lift >= 0),
    cost_factor double not null check (cost_factor > 0),
    rationale varchar not null
);

insert into mkt.action_effects
select *
from (
    values
        ('retention_offer', 0.15, 0.03, 3.0, 'A personal offer keeps part of the spend of a customer about to leave.'),
        ('priority_service', 0.10, 0.02, 5.0, 'Service for big spenders protects and grows a large expected spend.'),
        ('recommend_products', 0.06, 0.03, 1.0, 'Relevant products raise the basket of a customer likely to buy.'),
        ('personalized_offer', 0.08, 0.03, 1.5, 'An offer gives a lukewarm customer a reason to come back.')
) as seed (action, spend_lift, off_strategy_lift, cost_factor, rationale)
where not exists (select 1 from mkt.action_effects);
