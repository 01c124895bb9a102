-- Grain: one row per loaded order line. Every value is stored as text, and the
-- staging view types it. The loader has already checked each value: ids are
-- normalized ('17850.0' -> '17850'), dates are ISO 8601 text (UTC when the
-- source gave a zone) and numbers are the written text. source_file and
-- source_line point back to the source row.
create table if not exists raw.order_lines (
    load_id varchar not null,
    source_file varchar not null,
    source_line bigint not null,
    customer_id varchar,
    order_id varchar,
    ordered_at varchar,
    product_id varchar,
    quantity varchar,
    unit_price varchar,
    description varchar,
    country varchar
);
