-- Grain: one row per source row that a load rejected, per record kind, with
-- the reason, the source column at fault (NULL for a row with too many or too
-- few fields or an unclosed quote) and the row as read.
create or replace view mkt.rejected_rows as

with

rejected as (
    select * from raw.rejected_rows
),

final as (
    select
        load_id,
        kind,
        source_file,
        source_line,
        reason,
        column_name,
        source_text,
    from rejected
)

select * from final
