-- Grain: one row per product per load that changed it. A file that repeats a
-- product (order lines, for example) is folded to one row: each field takes
-- its most frequent value in the file.
create table if not exists raw.products (
    load_id varchar not null,
    source_file varchar not null,
    source_line bigint not null,
    product_id varchar not null,
    category varchar,
    description varchar,
    unit_price double
);
