-- Grain: one row per loaded browsing event (view, search, add_to_cart, ...).
-- The loader has checked and typed every value; event_at is UTC when the
-- source gave a time zone, else the source's local time as written.
create table if not exists raw.events (
    load_id varchar not null,
    source_file varchar not null,
    source_line bigint not null,
    customer_id varchar not null,
    event_at timestamp not null,
    event_type varchar not null,
    product_id varchar,
    session_id varchar,
    channel varchar
);
