"""Score customers on Spark executors with the ONNX model.

``score_features`` runs ``duckmkt.scoring.Scorer.score_arrow``, the function
behind DuckDB's ``score_customer``, inside ``DataFrame.mapInArrow``. Each
executor's Python worker scores whole Arrow record batches with the same
ONNX model, imputation and strategy rules, so Spark's scores equal DuckDB's up
to ONNX Runtime's batch-size-dependent float32 rounding.

The model files and the strategy rules travel inside the task closure, so the
executors need no access to the driver's model folder. That suits models of a
few megabytes; the customer model is a few kilobytes.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from duckmkt import scoring, strategy
from duckmkt.registry import METADATA_FILE, MODEL_FILE, load_metadata, verify_model
from duckmkt.sql_views import sql_dir

logger = logging.getLogger(__name__)

KEY_COLUMNS = ("customer_id", "cutoff_date")

# Scorers already opened in this Python worker, by model sha256 and rules.
_WORKER_SCORERS: dict[str, scoring.Scorer] = {}


@dataclass(frozen=True)
class ModelPayload:
    """What an executor needs to score: the model files and the strategy rules table."""

    files: dict[str, bytes]
    rules: pa.Table | None

    @property
    def key(self) -> str:
        digest = hashlib.sha256(self.files[MODEL_FILE] + self.files[METADATA_FILE])
        if self.rules is not None:
            digest.update(repr(self.rules.to_pylist()).encode())
        return digest.hexdigest()

    @classmethod
    def read(cls, model_dir: str | Path, rules: pa.Table | None = None) -> ModelPayload:
        """Verify the model in ``model_dir`` and read its files."""
        model_dir = Path(model_dir)
        verify_model(model_dir)
        # Every file of the folder, so checksum files the registry verifies come along.
        files = {path.name: path.read_bytes() for path in sorted(model_dir.iterdir()) if path.is_file()}
        return cls(files=files, rules=rules)


def score_schema() -> pa.Schema:
    """Return the Arrow schema of the scored rows: the keys, then every field of ``score_customer``."""
    key_fields = [pa.field("customer_id", pa.string()), pa.field("cutoff_date", pa.date32())]
    return pa.schema(key_fields + list(scoring._SCORE_ARROW_TYPE))


def worker_scorer(payload: ModelPayload) -> scoring.Scorer:
    """Return this worker's scorer for ``payload``, writing the model to a temporary folder on first use."""
    key = payload.key
    if key in _WORKER_SCORERS:
        return _WORKER_SCORERS[key]

    folder = Path(tempfile.mkdtemp(prefix="duckmkt-model-"))
    for name, content in payload.files.items():
        (folder / name).write_bytes(content)
    # Spark runs one task per core, so one ONNX thread per worker avoids
    # oversubscribing the cores.
    scorer = scoring.Scorer.load(folder, intra_op_threads=1)
    if payload.rules is not None:
        rules_db = duckdb.connect()
        rules_db.execute("create schema mkt")
        rules_db.register("rules_rows", payload.rules)
        rules_db.execute("create table mkt.strategy_rules as select * from rules_rows")
        rules_db.unregister("rules_rows")
        # The evaluator notices rule changes through this view.
        rules_db.execute((sql_dir() / "actions" / "strategy_rules_fingerprint.sql").read_text(encoding="utf-8"))
        scorer.rules = strategy.RuleEvaluator(rules_db, scorer.metadata["strategy_thresholds"], scorer.feature_names)
    _WORKER_SCORERS[key] = scorer
    return scorer


def score_batches(batches: Iterator[pa.RecordBatch], payload: ModelPayload, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """Score each record batch of feature rows; yield the keys and the score fields."""
    scorer = worker_scorer(payload)
    for batch in batches:
        features = pa.StructArray.from_arrays(batch.columns, names=batch.schema.names)
        scores = scorer.score_arrow(features)
        columns = [batch.column(batch.schema.get_field_index(name)) for name in KEY_COLUMNS]
        columns += [scores.field(i) for i in range(scores.type.num_fields)]
        yield pa.RecordBatch.from_arrays(columns, schema=schema)


def score_features(features, model_dir: str | Path, rules: pa.Table | None = None):
    """Return a DataFrame with the scores of every row of the Spark feature DataFrame ``features``.

    ``features`` has the columns of ``mkt.customer_features_at``; ``rules``
    are the rows of ``mkt.strategy_rules`` (None scores with the shipped
    default rules, as a scorer without a database does).
    """
    from pyspark.sql.pandas.types import from_arrow_schema

    payload = ModelPayload.read(model_dir, rules)
    schema = score_schema()
    logger.info("Scoring on Spark with model %s", load_metadata(model_dir).get("version"))
    return features.mapInArrow(lambda batches: score_batches(batches, payload, schema), from_arrow_schema(schema))
