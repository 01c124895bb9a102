"""Score customers inside DuckDB with ONNX Runtime.

``register(con)`` adds the scalar function ``score_customer(features)`` to a
DuckDB connection. It is a vectorized Arrow UDF: DuckDB hands it a batch of
feature structs, the function builds one float32 matrix and runs the ONNX
model once per batch. Importing this module never imports TensorFlow.

Example::

    con = duckmkt.connect("shop.duckdb")
    con.sql("select customer_id, score_customer(f) from mkt.customer_features f")
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from duckmkt import strategy
from duckmkt.errors import FeatureError, ModelError
from duckmkt.i18n import _
from duckmkt.registry import load_metadata, verify_model

logger = logging.getLogger(__name__)

HEADS = ("purchase_prob", "expected_spend", "churn_risk")
DEFAULT_MODELS_DIR = Path("models")
DEFAULT_MODEL_NAME = "customer"

SCORE_TYPE = duckdb.struct_type(
    {
        "purchase_prob": duckdb.sqltypes.DOUBLE,
        "expected_spend": duckdb.sqltypes.DOUBLE,
        "churn_risk": duckdb.sqltypes.DOUBLE,
        "strategy": duckdb.sqltypes.VARCHAR,
        "model_version": duckdb.sqltypes.VARCHAR,
    }
)

_SCORE_ARROW_TYPE = pa.struct(
    [
        pa.field("purchase_prob", pa.float64()),
        pa.field("expected_spend", pa.float64()),
        pa.field("churn_risk", pa.float64()),
        pa.field("strategy", pa.string()),
        pa.field("model_version", pa.string()),
    ]
)


def resolve_model_dir(
    model: str | Path | None = None,
    *,
    models_dir: str | Path = DEFAULT_MODELS_DIR,
    name: str = DEFAULT_MODEL_NAME,
) -> Path:
    """Return the folder of the model to score with.

    ``model`` may be a model folder, or a version of ``name`` under
    ``models_dir``; with None, the newest version of ``name`` is used.
    """
    if model is not None and Path(model).is_dir() and (Path(model) / "metadata.json").is_file():
        return Path(model)

    root = Path(models_dir) / name
    if model is not None:
        candidate = root / str(model)
        if candidate.is_dir():
            return candidate
        raise ModelError(
            _("Model {model} not found: it is neither a model folder nor a version under {root}.").format(
                model=model, root=root
            )
        )

    # Names starting with a dot are versions still being written.
    versions = sorted(
        path for path in root.glob("[!.]*") if (path / "metadata.json").is_file()
    ) if root.is_dir() else []
    if not versions:
        raise ModelError(_("No trained model found under {root}; run 'duckmkt train DB' first.").format(root=root))
    return versions[-1]


@dataclass
class Scorer:
    """A verified ONNX model and what is needed to turn its outputs into scores."""

    model_dir: Path
    session: ort.InferenceSession
    metadata: dict

    @classmethod
    def load(cls, model_dir: str | Path, *, intra_op_threads: int | None = None) -> Scorer:
        """Verify the sha256 of the model in ``model_dir`` and open it with ONNX Runtime."""
        model_dir = Path(model_dir)
        verify_model(model_dir)
        metadata = load_metadata(model_dir)

        options = ort.SessionOptions()
        if intra_op_threads is not None:
            options.intra_op_num_threads = intra_op_threads
        session = ort.InferenceSession(
            str(model_dir / "model.onnx"), sess_options=options, providers=["CPUExecutionProvider"]
        )
        return cls(model_dir=model_dir, session=session, metadata=metadata)

    @property
    def feature_names(self) -> list[str]:
        return list(self.metadata["feature_names"])

    @property
    def version(self) -> str:
        return str(self.metadata["version"])

    def predict_matrix(self, matrix: np.ndarray) -> dict[str, np.ndarray]:
        """Run the model on a float32 matrix whose columns follow ``feature_names``."""
        input_name = self.metadata.get("input_name", "features")
        outputs = self.session.run(list(HEADS), {input_name: matrix})
        return {head: output.reshape(-1).astype(np.float64) for head, output in zip(HEADS, outputs)}

    def feature_matrix(self, structs: pa.StructArray) -> np.ndarray:
        """Return the float32 feature matrix of a batch of feature structs.

        Fields are matched by name, so their order in the struct does not
        matter and extra fields are ignored. NULL becomes NaN, which the
        model imputes exactly as in training.
        """
        present = {structs.type.field(i).name: i for i in range(structs.type.num_fields)}
        missing = [name for name in self.feature_names if name not in present]
        if missing:
            raise FeatureError(
                _("score_customer: the feature struct has no field {fields}; pass a row of mkt.customer_features or a struct with the fields {expected}.").format(
                    fields=", ".join(missing), expected=", ".join(self.feature_names)
                )
            )

        matrix = np.empty((len(structs), len(self.feature_names)), dtype=np.float32)
        for column, name in enumerate(self.feature_names):
            values = structs.field(present[name])
            matrix[:, column] = _to_float(values, name)
        return matrix

    def score_arrow(self, structs: pa.Array | pa.ChunkedArray) -> pa.StructArray:
        """Score a batch of feature structs; a NULL struct gives a NULL score."""
        if isinstance(structs, pa.ChunkedArray):
            structs = structs.combine_chunks()
        if not pat.is_struct(structs.type):
            raise FeatureError(
                _("score_customer expects a struct of features, for example score_customer(f) with f a row of mkt.customer_features; it got {type}.").format(
                    type=structs.type
                )
            )

        n_rows = len(structs)
        if n_rows == 0:
            return pa.array([], type=_SCORE_ARROW_TYPE)

        predictions = self.predict_matrix(self.feature_matrix(structs))
        codes = strategy.assign_strategies(
            predictions["purchase_prob"],
            predictions["expected_spend"],
            predictions["churn_risk"],
            self.metadata["strategy_thresholds"],
        )
        arrays = [pa.array(predictions[head]) for head in HEADS]
        arrays.append(pa.array(codes.tolist(), type=pa.string()))
        arrays.append(pa.array([self.version] * n_rows, type=pa.string()))

        # Validity of the struct itself: a NULL row gets a NULL score.
        mask = structs.is_null() if structs.null_count else None
        return pa.StructArray.from_arrays(arrays, fields=list(_SCORE_ARROW_TYPE), mask=mask)


def _to_float(values: pa.Array, name: str) -> np.ndarray:
    """Cast one feature column to float64 with NULL as NaN, or raise naming the field."""
    kind = values.type
    if pat.is_null(kind):
        return np.full(len(values), np.nan)
    if not (pat.is_integer(kind) or pat.is_floating(kind) or pat.is_decimal(kind) or pat.is_boolean(kind)):
        raise FeatureError(
            _("score_customer: field {field} has type {type}; it must be numeric. Cast it, for example {field}::double.").format(
                field=name, type=kind
            )
        )
    as_float = pc.cast(values, pa.float64(), safe=False)
    return as_float.to_numpy(zero_copy_only=False)


def register(
    con: duckdb.DuckDBPyConnection,
    model: str | Path | None = None,
    *,
    models_dir: str | Path = DEFAULT_MODELS_DIR,
    name: str = DEFAULT_MODEL_NAME,
) -> Scorer:
    """Register ``score_customer`` on ``con`` and return the scorer behind it.

    The model is the newest version of ``name`` under ``models_dir`` unless
    ``model`` names a version or a model folder.
    """
    scorer = Scorer.load(resolve_model_dir(model, models_dir=models_dir, name=name))
    _replace_function(con, "score_customer", scorer.score_arrow, SCORE_TYPE)
    logger.info("Registered score_customer with model %s version %s", scorer.metadata.get("name"), scorer.version)
    return scorer


def _replace_function(con: duckdb.DuckDBPyConnection, function_name: str, function, return_type) -> None:
    try:
        con.remove_function(function_name)
    except duckdb.InvalidInputException:
        pass
    # parameters=None lets DuckDB pass the struct with whatever fields it has,
    # so a missing field is reported by name here instead of as a binder error.
    con.create_function(
        function_name,
        function,
        parameters=None,
        return_type=return_type,
        type="arrow",
        null_handling="special",
        side_effects=False,
    )


def connect(
    path: str | Path,
    model: str | Path | None = None,
    *,
    models_dir: str | Path = DEFAULT_MODELS_DIR,
    name: str = DEFAULT_MODEL_NAME,
    read_only: bool = False,
) -> duckdb.DuckDBPyConnection:
    """Open the database at ``path`` with ``score_customer`` registered."""
    from duckmkt.database import connect_database

    con = connect_database(path, read_only=read_only)
    register(con, model, models_dir=models_dir, name=name)
    return con


def model_summary(scorer: Scorer) -> str:
    """Return the model's name, version and validation metrics as JSON text."""
    keys = ("name", "version", "train_cutoff", "validation_cutoff", "metrics")
    return json.dumps({key: scorer.metadata.get(key) for key in keys}, indent=2, default=str)
