-- Grain: one row per file load and record kind. The sha256 lets a repeated
-- load of the same file be recognized and skipped; report is the load report
-- as JSON (rows read, loaded, rejected by reason, encoding, date decisions).
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

-- Columns added after the first release; databases created before get them here.
alter table raw.load_log add column if not exists n_rows_rejected bigint default 0;
alter table raw.load_log add column if not exists n_rows_already_loaded bigint default 0;
alter table raw.load_log add column if not exists report varchar;
