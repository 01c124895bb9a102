-- Grain: one row per customer per load that changed the profile. attributes
-- is a JSON object of the source columns the contract has no field for,
-- kept as text.
create table if not exists raw.customers (
    load_id varchar not null,
    source_file varchar not null,
    source_line bigint not null,
    customer_id varchar not null,
    signed_up_at timestamp,
    region varchar,
    country varchar,
    gender varchar,
    birth_year bigint,
    attributes varchar
);
