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
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from duckmkt import explain, model_checks, registry, strategy
from duckmkt.errors import FeatureError, ModelError
from duckmkt.i18n import _
from duckmkt.recommend.scoring import register_recommender
from duckmkt.registry import load_metadata, verify_model
from duckmkt.score_flags import Bounds, data_quality_flags, row_bounds
from duckmkt.score_macro import feature_type_check, field_type_error, not_a_struct_error, score_macro_sql
from duckmkt.suggestions import closest_name

logger = logging.getLogger(__name__)

HEADS = ("purchase_prob", "expected_spend", "churn_risk")
# The UDF behind the score_customer macro of a registered connection.
CHECKED_FUNCTION = "duckmkt_score_customer"
FINGERPRINT_FUNCTION = "duckmkt_rules_fingerprint"
CHECK_FUNCTION = "duckmkt_check_features"
DEFAULT_MODELS_DIR = Path("models")
DEFAULT_MODEL_NAME = "customer"

SCORE_TYPE = duckdb.struct_type(
    {
        "purchase_prob": duckdb.sqltypes.DOUBLE,
        "expected_spend": duckdb.sqltypes.DOUBLE,
        "churn_risk": duckdb.sqltypes.DOUBLE,
        "strategy": duckdb.sqltypes.VARCHAR,
        "model_version": duckdb.sqltypes.VARCHAR,
        # Data-quality flags: used features that were imputed or outside the training range.
        "imputed_features": duckdb.list_type(duckdb.sqltypes.VARCHAR),
        "out_of_range_features": duckdb.list_type(duckdb.sqltypes.VARCHAR),
    }
)

_SCORE_ARROW_TYPE = pa.struct(
    [
        pa.field("purchase_prob", pa.float64()),
        pa.field("expected_spend", pa.float64()),
        pa.field("churn_risk", pa.float64()),
        pa.field("strategy", pa.string()),
        pa.field("model_version", pa.string()),
        pa.field("imputed_features", pa.list_(pa.string())),
        pa.field("out_of_range_features", pa.list_(pa.string())),
    ]
)


def resolve_model_dir(
    model: str | Path | None = None,
    *,
    models_dir: str | Path = DEFAULT_MODELS_DIR,
    name: str = DEFAULT_MODEL_NAME,
    con: duckdb.DuckDBPyConnection | None = None,
) -> Path:
    """Return the folder of the model to score with.

    ``model`` may be a model folder, or a version of ``name`` under
    ``models_dir``. With None, the version of ``name`` promoted in the
    ``mkt.models`` table of ``con`` is used. Without a connection or a
    promoted version, it is the newest version of ``name`` under
    ``models_dir``. A version missing under ``models_dir`` is looked up in
    the folder that ``mkt.models`` recorded for it.
    """
    if model is not None and Path(model).is_dir() and (Path(model) / "metadata.json").is_file():
        return Path(model)

    root = Path(models_dir) / registry.check_model_name(name)
    if model is None and con is not None:
        promoted = registry.promoted_version(con, name)
        if promoted is not None:
            model = promoted
    if model is not None:
        candidate = root / str(model)
        if candidate.is_dir():
            return candidate
        recorded = _recorded_model_dir(con, name, str(model))
        if recorded is not None:
            return recorded
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
        recorded = _recorded_model_dir(con, name, None)
        if recorded is not None:
            return recorded
        if not Path(models_dir).is_dir():
            raise ModelError(
                _("The models folder {models_dir} does not exist; check --models-dir, or run 'duckmkt train DB' first.").format(
                    models_dir=models_dir
                )
            )
        raise ModelError(_("No trained model found under {root}; run 'duckmkt train DB' first.").format(root=root))
    return _newest_usable(versions, name)


def _newest_usable(versions: list[Path], name: str) -> Path:
    """Return the newest of ``versions`` whose heads beat their checks (``model_checks``), else the newest; warn when one is skipped."""
    newest_failed = _failed_checks(versions[-1])
    if not newest_failed:
        return versions[-1]
    usable = next((path for path in reversed(versions[:-1]) if not _failed_checks(path)), None)
    if usable is None:
        logger.warning(
            _("Version %s of model %s is not usable (%s), and no older version is; scoring with it anyway. Train again with more epochs."),
            versions[-1].name, name, model_checks.describe(newest_failed),
        )
        return versions[-1]
    logger.warning(
        _("Version %s of model %s is not usable (%s), so version %s is used; name the newer one with --model to use it anyway."),
        versions[-1].name, name, model_checks.describe(newest_failed), usable.name,
    )
    return usable


def _failed_checks(model_dir: Path) -> list[tuple[str, float, float]]:
    """Return the failed metric checks recorded in a version's metadata.json (none for a file that cannot be read)."""
    try:
        metadata = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return model_checks.far_worse_metrics(metadata.get("metrics") or {}, metadata.get("baselines") or {})


def _recorded_model_dir(con: duckdb.DuckDBPyConnection | None, name: str, version: str | None) -> Path | None:
    """Return the folder that ``mkt.models`` records for a version (None: the newest), if it still exists.

    This lets a command run from another working directory than the one the
    model was trained in, since ``--models-dir`` is relative to it.
    """
    if con is None:
        return None
    try:
        rows = con.execute(
            """
            select model_dir from mkt.models
            where name = ? and (? is null or version = ?)
            order by version desc
            """,
            [name, version, version],
        ).fetchall()
    except duckdb.Error:
        # An older database without the registry table.
        return None
    for (model_dir,) in rows:
        path = Path(model_dir)
        if (path / "metadata.json").is_file():
            return path
    return None


@dataclass
class Scorer:
    """A verified ONNX model and what is needed to turn its outputs into scores."""

    model_dir: Path
    session: ort.InferenceSession
    metadata: dict
    # Set by register() to read the rules of the scoring connection; a scorer
    # used without a connection evaluates the shipped default rules.
    rules: strategy.RuleEvaluator | None = None
    _versions: pa.Array | None = field(default=None, repr=False)
    # Training ranges per feature cutoff, widened for calendar features
    # (score_flags.row_bounds), computed at the first batch of each cutoff.
    _bounds_by_cutoff: dict[date | None, Bounds] = field(default_factory=dict, repr=False)

    def rule_evaluator(self) -> strategy.RuleEvaluator:
        if self.rules is None:
            self.rules = strategy.RuleEvaluator(duckdb.connect(), self.metadata["strategy_thresholds"], self.feature_names)
        return self.rules

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

    def _version_column(self, n_rows: int) -> pa.Array:
        """Return the model version repeated ``n_rows`` times, sliced from a cached array."""
        if self._versions is None or len(self._versions) < n_rows:
            self._versions = pa.array([self.version] * max(n_rows, 4096), type=pa.string())
        return self._versions.slice(0, n_rows)

    def predict_matrix(self, matrix: np.ndarray) -> dict[str, np.ndarray]:
        """Run the model on a float32 matrix whose columns follow ``feature_names``."""
        input_name = self.metadata.get("input_name", "features")
        outputs = self.session.run(list(HEADS), {input_name: matrix})
        return {head: output.reshape(-1).astype(np.float64) for head, output in zip(HEADS, outputs)}

    def check_field_names(self, names: Collection[str]) -> None:
        """Raise naming the model features missing from a feature struct's field ``names``."""
        missing = [name for name in self.feature_names if name not in names]
        if not missing:
            return
        expected = ", ".join(self.feature_names)
        # A field that is not a feature but is close to a missing one is
        # most likely that feature, mistyped.
        for field_name in names:
            if field_name in self.feature_names:
                continue
            suggestion = closest_name(field_name, missing)
            if suggestion is not None:
                raise FeatureError(
                    _("score_customer: the feature struct has no field {fields}. Its field {field} is not a feature; did you mean {suggestion}? Pass a row of mkt.customer_features or a struct with the fields {expected}.").format(
                        fields=", ".join(missing), field=field_name, suggestion=suggestion, expected=expected
                    )
                )
        raise FeatureError(
            _("score_customer: the feature struct has no field {fields}; pass a row of mkt.customer_features or a struct with the fields {expected}.").format(
                fields=", ".join(missing), expected=expected
            )
        )

    def feature_matrix(self, structs: pa.StructArray) -> np.ndarray:
        """Return the float32 feature matrix of a batch of feature structs.

        Fields are matched by name, so their order in the struct does not
        matter and extra fields are ignored. NULL becomes NaN, which the
        model imputes exactly as in training. A value whose float32 rounding
        overflows (beyond about 3.4e38 in magnitude) also becomes NaN instead
        of infinity, so it is imputed and listed in ``imputed_features``, as
        DuckDB's ``try_cast(x as float)`` in the compiled SQL macro gives NULL.
        """
        present = {structs.type.field(i).name: i for i in range(structs.type.num_fields)}
        self.check_field_names(present)
        # A NULL-free DOUBLE column is read without a copy and narrowed to
        # float32 as it is stored; an overflow becomes infinite there.
        matrix = np.empty((len(structs), len(self.feature_names)), dtype=np.float32)
        with np.errstate(over="ignore"):
            for column, name in enumerate(self.feature_names):
                matrix[:, column] = _to_float(structs.field(present[name]), name)
        infinite = np.isinf(matrix)
        if infinite.any():
            matrix[infinite] = np.nan
        return matrix

    def score_arrow_checked(self, structs: pa.Array | pa.ChunkedArray, fingerprints: pa.Array | pa.ChunkedArray) -> pa.StructArray:
        """Score a batch whose query passed the rules' fingerprint, read when the query was planned (see ``register``)."""
        fingerprint = fingerprints[0].as_py() if len(fingerprints) else None
        return self._score(structs, fingerprint, for_duckdb=True)

    def score_arrow(self, structs: pa.Array | pa.ChunkedArray) -> pa.StructArray:
        """Score a batch of feature structs; a NULL struct gives a NULL score."""
        return self._score(structs, None)

    def score_arrow_udf(self, structs: pa.Array | pa.ChunkedArray) -> pa.StructArray:
        """Return ``score_arrow``'s values, encoded for DuckDB: this is the UDF ``score_customer``."""
        # DuckDB derives the UDF's parameters from this signature, so it
        # keeps the one argument.
        return self._score(structs, None, for_duckdb=True)

    def warm_up(self, n_rows: int = 2048) -> None:
        """Score ``n_rows`` rows of the training medians once and drop the result.

        The first call pays for ONNX Runtime's memory arena, the compiled
        strategy rules and Arrow's first kernel calls. Paying it when the
        model is registered keeps it out of the first query. DuckDB hands a
        scalar UDF 2,048 rows at a time, hence the default.
        """
        medians = self.metadata.get("imputation", {})
        columns = [pa.array(np.full(n_rows, medians.get(name, 0.0) or 0.0, dtype=np.float64)) for name in self.feature_names]
        # The encoding of the UDF's results, which is what the first query runs.
        self._score(pa.StructArray.from_arrays(columns, names=self.feature_names), None, for_duckdb=True)

    def _score(self, structs: pa.Array | pa.ChunkedArray, rules_fingerprint: str | None, *, for_duckdb: bool = False) -> pa.StructArray:
        """Score a batch; ``rules_fingerprint`` is the fingerprint of ``mkt.strategy_rules`` read for this query, or None.

        ``for_duckdb`` returns the strategy codes and the flag lists
        dictionary-encoded, so Python builds no string per row and DuckDB
        reads them as VARCHAR. Other readers (Spark, tests) get plain strings.
        """
        if isinstance(structs, pa.ChunkedArray):
            structs = structs.combine_chunks()
        if not pat.is_struct(structs.type):
            raise not_a_struct_error(structs.type)

        n_rows = len(structs)
        if n_rows == 0:
            return pa.array([], type=_SCORE_ARROW_TYPE)

        matrix = self.feature_matrix(structs)
        predictions = self.predict_matrix(matrix)
        arrays = [pa.array(predictions[head]) for head in HEADS]
        # Strategies come from the rules in mkt.strategy_rules, with the
        # meaning the macro mkt.assign_strategy gives them.
        arrays.append(self.rule_evaluator().evaluate(predictions, structs, fingerprint=rules_fingerprint, dictionary=for_duckdb))
        arrays.append(self._version_column(n_rows))
        cutoff_column = structs.type.get_field_index("cutoff_date")
        cutoffs = structs.field(cutoff_column) if cutoff_column >= 0 else None
        bounds = row_bounds(self.metadata, self.feature_names, cutoffs, self._bounds_by_cutoff)
        arrays.extend(data_quality_flags(matrix, self.metadata, self.feature_names, bounds, dictionary=for_duckdb))

        # Validity of the struct itself: a NULL row gets a NULL score.
        mask = structs.is_null() if structs.null_count else None
        if for_duckdb:
            return pa.StructArray.from_arrays(arrays, names=_SCORE_ARROW_TYPE.names, mask=mask)
        return pa.StructArray.from_arrays(arrays, fields=list(_SCORE_ARROW_TYPE), mask=mask)


def _to_float(values: pa.Array, name: str) -> np.ndarray:
    """Cast one feature column to float64 with NULL as NaN, or raise naming the field."""
    kind = values.type
    if pat.is_null(kind):
        return np.full(len(values), np.nan)
    if not (pat.is_integer(kind) or pat.is_floating(kind) or pat.is_decimal(kind) or pat.is_boolean(kind)):
        raise field_type_error(name, kind)
    if pat.is_float64(kind):
        # Without NULLs this is the buffer itself; with them, a copy with NaN.
        return values.to_numpy(zero_copy_only=False)
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

    The model is the version of ``name`` promoted in ``mkt.models`` (the
    newest under ``models_dir`` when none is promoted) unless ``model`` names
    a version or a model folder.
    """
    scorer = Scorer.load(
        resolve_model_dir(model, models_dir=models_dir, name=name, con=con),
        intra_op_threads=_onnx_threads_for(con),
    )
    # A macro of an earlier registration would shadow the new functions.
    con.execute("drop macro if exists temp.score_customer")
    if scorer.metadata.get("model_kind") == "response":
        # A response model has the one output response_prob: it gets
        # score_response(f) instead of score_customer.
        from duckmkt.response_scoring import register_response

        register_response(con, scorer)
        return scorer
    failed = model_checks.far_worse_metrics(scorer.metadata.get("metrics") or {}, scorer.metadata.get("baselines") or {})
    if failed and model is not None:
        # A version picked by default was checked in resolve_model_dir.
        logger.warning(
            _("Version %s of model %s is not usable (%s); its scores are not reliable. Train again with more epochs."),
            scorer.version, scorer.metadata.get("name"), model_checks.describe(failed),
        )
    scorer.rules = strategy.RuleEvaluator(con, scorer.metadata["strategy_thresholds"], scorer.feature_names)
    strategy.compile_rules_if_writable(con, scorer.metadata["strategy_thresholds"], scorer.version, scorer.feature_names)
    scorer.warm_up()
    _replace_function(con, "score_customer", scorer.score_arrow_udf, SCORE_TYPE)
    _register_checked_macro(con, scorer)
    explain.register(con, scorer)
    # recommend_products, when a recommender is trained under models_dir.
    register_recommender(con, models_dir=models_dir)
    logger.info("Registered score_customer with model %s version %s", scorer.metadata.get("name"), scorer.version)
    return scorer


# Every Python function registered as a UDF, kept alive for the life of the
# process. DuckDB 2.0.1 drops its reference on remove_function even while a
# query on another cursor is still calling it. The freed callable then either
# crashes the process or lets the rest of that query run the newly registered
# model, which mixes two versions in one result. Keeping the old callables
# (one scorer per register call) lets a running query finish on its version.
# NOTE: the list grows by one callable per registration and is never
# trimmed; a process that re-registers very often keeps every old scorer.
_REGISTERED_FUNCTIONS: list[object] = []


def keep_alive(function) -> None:
    """Keep a UDF callable referenced for the life of the process (see above)."""
    _REGISTERED_FUNCTIONS.append(function)


def _onnx_threads_for(con: duckdb.DuckDBPyConnection) -> int | None:
    """Return ONNX Runtime's thread count for UDF calls on ``con``: 1 when DuckDB runs several threads.

    Each DuckDB thread calls the UDF on its own batches, and ONNX Runtime
    releases the GIL while it runs, so one ONNX thread per call already keeps
    the cores busy. Two ONNX threads per call oversubscribed them: 1 M rows
    of the scoring benchmark's table scored about 20 % slower on 2 cores.
    """
    threads = con.execute("select current_setting('threads')").fetchall()[0][0]
    return 1 if int(threads) > 1 else None


def _register_checked_macro(con: duckdb.DuckDBPyConnection, scorer: Scorer) -> None:
    """Make ``score_customer`` on ``con`` the macro of ``duckmkt.score_macro``.

    Among other things, the macro passes the rules' fingerprint, read once per
    query: without it, the UDF queries DuckDB for the fingerprint on every
    batch of 2,048 rows, which cost about a third of the scoring time. The
    functions that read and check it have no side effects and constant
    arguments, so DuckDB's optimizer folds them to a constant when it plans
    each query (also for PREPARE and EXECUTE). A scalar subquery would do the
    same but breaks ``unnest(score_customer(f))`` in DuckDB 2.0.1. A temporary
    macro is seen by ``con`` only; cursors and other connections call the
    UDF ``score_customer`` itself.
    """
    _replace_function(con, CHECKED_FUNCTION, scorer.score_arrow_checked, SCORE_TYPE)
    evaluator = scorer.rule_evaluator()
    check = feature_type_check(scorer.feature_names, scorer.check_field_names)
    for function_name, function, parameters in (
        (FINGERPRINT_FUNCTION, evaluator.fingerprint, []),
        (CHECK_FUNCTION, check, [duckdb.sqltypes.VARCHAR, duckdb.sqltypes.VARCHAR]),
    ):
        try:
            con.remove_function(function_name)
        except duckdb.InvalidInputException:
            pass
        keep_alive(function)
        con.create_function(function_name, function, parameters=parameters, return_type=duckdb.sqltypes.VARCHAR, side_effects=False)
    con.execute(score_macro_sql("score_customer", CHECKED_FUNCTION, CHECK_FUNCTION, FINGERPRINT_FUNCTION, scorer.feature_names))


def _replace_function(con: duckdb.DuckDBPyConnection, function_name: str, function, return_type) -> None:
    try:
        con.remove_function(function_name)
    except duckdb.InvalidInputException:
        pass
    keep_alive(function)
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
