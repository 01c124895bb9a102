-- Grain: one row per source row that a load rejected, per record kind. The
-- row is kept as read: source_text is a JSON object of the row's columns, or
-- the line itself when it had too many or too few fields or opened a quote
-- that is never closed. Together with the kind's raw table this accounts for
-- every row of every loaded file.
create table if not exists raw.rejected_rows (
    load_id varchar not null,
    kind varchar not null,
    source_file varchar not null,
    source_line bigint not null,
    reason varchar not null,
    column_name varchar,
    source_text varchar
);
