-- Grain: one row per trained model version (name, version).
-- The database side of the model registry: the files live in
-- <models_dir>/<name>/<version>/ and this table records where, what the
-- version was trained on, its validation metrics (JSON) and its status:
-- candidate (trained), promoted (used by score_customer), archived (promoted
-- before, replaced by a later promotion) or rolled_back.
create table if not exists mkt.models (
    name varchar not null,
    version varchar not null,
    created_at timestamp not null,
    model_kind varchar not null,
    model_dir varchar not null,
    train_cutoffs varchar[],
    validation_cutoff date,
    horizon_days integer,
    metrics json,
    onnx_sha256 varchar not null,
    status varchar not null default 'candidate',
    primary key (name, version)
)
