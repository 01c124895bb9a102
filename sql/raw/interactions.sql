-- Grain: one row per loaded marketing contact (an e-mail sent, opened or
-- clicked, a call, ...) with its outcome. treatment is true for customers in
-- a campaign's treatment group and false for its control group.
create table if not exists raw.interactions (
    load_id varchar not null,
    source_file varchar not null,
    source_line bigint not null,
    customer_id varchar not null,
    occurred_at timestamp not null,
    channel varchar not null,
    campaign_id varchar not null,
    interaction_type varchar not null,
    outcome varchar not null,
    treatment boolean
);
