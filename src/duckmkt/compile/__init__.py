"""Compile a trained ONNX model into DuckDB SQL stored in the database file.

``compile_model(con, model_dir)`` creates, in one transaction:

- ``mkt.score_customers(tbl)``: a table macro. ``tbl`` is the name of a
  table or view with ``customer_id`` and every feature column, for example
  ``'mkt.customer_features'``. It returns one row per input row with
  ``customer_id``, every model output, the strategy and the model version.
  The strategy is the rules of ``mkt.strategy_rules`` with the model's
  thresholds, written into the macro; it raises an error once the rules
  are edited, until ``duckmkt compile`` runs again.
- ``mkt.customer_predictions``: a view scoring ``mkt.customer_features``.
- ``mkt.compiled_model``: one row describing the compiled model.

Any DuckDB client that opens the file (the CLI, DBeaver, a BI driver) can
then score customers with plain SQL, without Python or ONNX Runtime.

Example::

    select * from mkt.score_customers('mkt.customer_features') order by expected_spend desc limit 10
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import onnx

from duckmkt import __version__, strategy
from duckmkt.compile.graph import Cte, GraphTranslator, Symbolic, sanitize
from duckmkt.compile.operators import OPERATORS
from duckmkt.errors import ModelError
from duckmkt.i18n import _
from duckmkt.registry import MODEL_FILE, verify_model
from duckmkt.sql_views import quote_identifier

logger = logging.getLogger(__name__)

SCORE_MACRO = "mkt.score_customers"
PREDICTIONS_VIEW = "mkt.customer_predictions"
INFO_TABLE = "mkt.compiled_model"


@dataclass(frozen=True)
class CompiledModel:
    """The SQL of a compiled model and what it was built from."""

    name: str
    version: str
    operators: tuple[str, ...]
    outputs: tuple[str, ...]
    score_macro_sql: str
    n_ctes: int


@dataclass(frozen=True)
class StrategySql:
    """The strategy rules as one CASE expression over the structs ``scores`` and ``features``.

    ``fingerprint`` is the md5 of the rules it was compiled from (the value of
    ``mkt.strategy_rules_fingerprint`` at that time).
    """

    case_sql: str
    fingerprint: str


def translate_model(model_dir: str | Path, rules: StrategySql) -> CompiledModel:
    """Verify the model in ``model_dir`` and translate it to SQL, without touching a database.

    Raises ModelError when the model fails verification or uses an operator
    the compiler does not translate.
    """
    model_dir = Path(model_dir)
    metadata = verify_model(model_dir)
    model = onnx.load(str(model_dir / MODEL_FILE))
    feature_names = list(metadata["feature_names"])
    graph_outputs = [output.name for output in model.graph.output]
    outputs = [name for name in metadata.get("output_names", []) if name in graph_outputs] or graph_outputs
    missing = [name for name in strategy.PREDICTION_NAMES if name not in outputs]
    if missing:
        raise ModelError(
            _("The model in {path} has no output {outputs}, which the strategy rules need; retrain it with 'duckmkt train'.").format(
                path=model_dir, outputs=", ".join(missing)
            )
        )

    translator = GraphTranslator(model, OPERATORS, source="features")
    input_columns = tuple(f"input_{sanitize(name)}" for name in feature_names)
    results = translator.translate(Symbolic(input_columns, simple=True))
    for name, tensor in results.items():
        if tensor.width != 1:
            raise ModelError(
                _("The ONNX output {output} has {width} columns; the SQL compiler expects one value per customer.").format(
                    output=name, width=tensor.width
                )
            )

    version = str(metadata["version"])
    predictions = Cte(name="predictions", source=translator.last_source)
    predictions.columns = [(name, results[name].columns[0]) for name in outputs]
    ctes = [
        _features_cte(feature_names, input_columns),
        *translator.ctes,
        predictions,
        _strategy_inputs_cte(feature_names, version),
    ]
    return CompiledModel(
        name=str(metadata.get("name", "")),
        version=version,
        operators=tuple(sorted({node.op_type for node in model.graph.node})),
        outputs=tuple(outputs),
        score_macro_sql=_score_macro_sql(ctes, outputs, version, rules),
        n_ctes=len(ctes),
    )


def _features_cte(feature_names: list[str], input_columns: tuple[str, ...]) -> Cte:
    # ONNX Runtime receives float32, so each feature is rounded to float32
    # first; NULL (and a value beyond the float32 range) becomes NaN, which
    # the model imputes exactly as the score_customer UDF does. The original
    # columns stay because strategy rules may read features. No other column
    # of the input is carried, so none can collide with generated names.
    keep = ", ".join(["customer_id", *(quote_identifier(name) for name in feature_names)])
    cte = Cte(name="features", source="query_table(tbl)", keep=keep)
    for name, alias in zip(feature_names, input_columns):
        cte.columns.append((alias, f"coalesce(try_cast({quote_identifier(name)}::double as float)::double, 'nan'::double)"))
    return cte


def _strategy_inputs_cte(feature_names: list[str], version: str) -> Cte:
    """Return the step that packs predictions and features into the structs the rules read."""
    cte = Cte(name="strategy_inputs", source="predictions")
    scores = ", ".join([*(f"{name} := {name}" for name in strategy.PREDICTION_NAMES), f"model_version := {_sql_string(version)}"])
    features = ", ".join(f"{quote_identifier(name)} := {quote_identifier(name)}" for name in feature_names)
    cte.columns = [("scores", f"struct_pack({scores})"), ("features", f"struct_pack({features})")]
    return cte


def _score_macro_sql(ctes: list[Cte], outputs: list[str], version: str, rules: StrategySql) -> str:
    """Return the ``create macro`` statement of ``mkt.score_customers``."""
    body = ",\n\n".join(cte.sql() for cte in ctes)
    stale = _sql_string(
        "mkt.strategy_rules changed after mkt.score_customers was compiled; run 'duckmkt compile DB' to compile the edited rules."
    )
    case_sql = "\n            ".join(rules.case_sql.splitlines())
    strategy_sql = (
        "case\n"
        f"            when (select fingerprint from mkt.strategy_rules_fingerprint) <> {_sql_string(rules.fingerprint)} then error({stale})\n"
        f"            else {case_sql}\n"
        "        end"
    )
    selected = ",\n        ".join(["customer_id", *outputs, f"{strategy_sql} as strategy", f"{_sql_string(version)} as model_version"])
    final = f"final as (\n    select\n        {selected},\n    from strategy_inputs\n)"
    return (
        f"create or replace macro {SCORE_MACRO}(tbl) as table\n"
        "-- Grain: one row per row of tbl, which needs customer_id and every model feature.\n"
        f"with\n\n{body},\n\n{final}\n\nselect * from final"
    )


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def read_strategy_sql(con: duckdb.DuckDBPyConnection, thresholds: dict, feature_names: list[str]) -> StrategySql:
    """Compile the rules of ``mkt.strategy_rules`` with a model's thresholds."""
    rules = strategy.read_rules(con)
    return StrategySql(
        case_sql=strategy.compile_case_sql(rules, thresholds, feature_names),
        fingerprint=strategy.rules_fingerprint(con),
    )


def compile_model(con: duckdb.DuckDBPyConnection, model_dir: str | Path) -> CompiledModel:
    """Translate the model in ``model_dir`` and store its SQL in the database of ``con``.

    Everything is replaced in one transaction, so a client sees the previous
    compiled model or the new one. Raises ModelError as translate_model does.
    """
    metadata = verify_model(model_dir)
    rules = read_strategy_sql(con, metadata["strategy_thresholds"], list(metadata["feature_names"]))
    compiled = translate_model(model_dir, rules)
    info = {
        "name": compiled.name,
        "version": compiled.version,
        "onnx_sha256": metadata["onnx_sha256"],
        "feature_names": list(metadata["feature_names"]),
        "outputs": list(compiled.outputs),
        "operators": list(compiled.operators),
        "compiled_at": datetime.now(timezone.utc).replace(tzinfo=None),
        "duckmkt_version": __version__,
    }

    con.execute("begin transaction")
    try:
        con.execute("create schema if not exists mkt")
        con.execute(compiled.score_macro_sql)
        con.execute(
            f"create or replace view {PREDICTIONS_VIEW} as\n"
            f"-- Grain: one row per customer of mkt.customer_features, scored by the compiled model.\n"
            f"select * from {SCORE_MACRO}('mkt.customer_features')"
        )
        con.execute(
            f"""create or replace table {INFO_TABLE} as
            select
                $name::varchar as name,
                $version::varchar as version,
                $onnx_sha256::varchar as onnx_sha256,
                $feature_names::varchar[] as feature_names,
                $outputs::varchar[] as outputs,
                $operators::varchar[] as operators,
                $compiled_at::timestamp as compiled_at,
                $duckmkt_version::varchar as duckmkt_version""",
            info,
        )
        con.execute("commit")
    except duckdb.Error as error:
        con.execute("rollback")
        raise ModelError(
            _("Storing the compiled model {version} in the database failed: {error}").format(version=compiled.version, error=error)
        ) from error

    logger.info(
        "Compiled model %s version %s into %s (%d CTEs, operators %s)",
        compiled.name,
        compiled.version,
        SCORE_MACRO,
        compiled.n_ctes,
        ", ".join(compiled.operators),
    )
    return compiled


def compiled_model_info(con: duckdb.DuckDBPyConnection) -> dict | None:
    """Return the row of ``mkt.compiled_model`` as a dict, or None when no model was compiled."""
    exists = con.execute(
        "select count(*) from duckdb_tables() where schema_name = 'mkt' and table_name = 'compiled_model'"
    ).fetchall()[0][0]
    if not exists:
        return None
    cursor = con.execute(f"select * from {INFO_TABLE}")
    names = [column[0] for column in cursor.description]
    rows = cursor.fetchall()
    return dict(zip(names, rows[0])) if rows else None


def describe(compiled: CompiledModel) -> str:
    """Return a JSON summary of ``compiled`` for logs and the CLI."""
    return json.dumps(
        {"name": compiled.name, "version": compiled.version, "operators": compiled.operators, "ctes": compiled.n_ctes},
        indent=2,
    )
