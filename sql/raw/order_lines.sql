-- Grain: one row per source row of every loaded order-line file, exactly as read.
-- Every value is kept as text so that nothing is rounded or misread before
-- staging decides how to type it; source_file and source_line point back to it.
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
