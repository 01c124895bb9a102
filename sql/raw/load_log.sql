-- Grain: one row per file load. The sha256 lets a repeated load of the same
-- file be recognized and skipped.
create table if not exists raw.load_log (
    load_id varchar primary key,
    kind varchar not null,
    source_file varchar not null,
    sha256 varchar not null,
    mapping varchar not null,
    n_rows_read bigint not null,
    n_rows_loaded bigint not null,
    loaded_at timestamp not null
);
