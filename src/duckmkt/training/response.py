"""Binary response models on a label the user defines (``duckmkt train DB --label SQL_OR_VIEW``).

The label is a query or view with the columns ``customer_id`` and ``label``
(0/1 or boolean); the features are a query or view with ``customer_id`` and
numeric columns, by default ``mkt.customer_features``. Rows are the customers
in both. They are split into ``n_folds`` stratified folds: ``fold`` is held
out for the reported metrics, and a stratified tenth of the other folds is
used for early stopping and Platt calibration, so the held-out metrics are
not tuned on. The model has one head, ``response_prob``, and is exported,
saved and registered like the customer model, with ``model_kind`` "response".
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import keras
import numpy as np
import polars as pl

from duckmkt import registry
from duckmkt.errors import DataError, DuckmktError
from duckmkt.evaluation.metrics import probability_metrics
from duckmkt.i18n import _
from duckmkt.training import calibration, export, metrics
from duckmkt.training import model as network
from duckmkt.training.trainer import MAX_POSITIVE_WEIGHT, _versions

logger = logging.getLogger(__name__)

DEFAULT_FEATURES = "mkt.customer_features"
# A bare (optionally schema-qualified) name is read as a view or table.
_RELATION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
# Share of the training folds held back for early stopping and calibration.
EARLY_STOPPING_FRACTION = 0.1


def relation_sql(source: str) -> str:
    """Return a query for ``source``: a view or table name becomes ``select * from name``."""
    source = source.strip().rstrip(";")
    if not source:
        raise DuckmktError(_("The label or feature source is empty; give a view name or a select query."))
    if _RELATION_NAME.match(source):
        return f"select * from {source}"
    # The query is pasted into a CTE, so it must be exactly one select: a
    # second statement (a drop, a copy) would run with the caller's rights.
    try:
        statements = duckdb.connect().extract_statements(source)
    except duckdb.Error as error:
        raise DuckmktError(
            _("The label or feature query is not valid SQL: {error}; give a view name or one select query.").format(error=error)
        ) from error
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        raise DuckmktError(
            _("The label or feature query must be one select statement, not {kinds}; give a view name or one select query.").format(
                kinds=", ".join(statement.type.name.lower() for statement in statements)
            )
        )
    # A newline ends a trailing line comment before the CTE's closing bracket.
    return source + "\n"


def read_response_rows(
    con: duckdb.DuckDBPyConnection, label: str, features: str = DEFAULT_FEATURES
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Return (feature names, float32 matrix, 0/1 labels) of the customers in both sources, ordered by customer_id."""
    try:
        frame = con.sql(
            f"""
            with
            label_rows as ({relation_sql(label)}),
            feature_rows as ({relation_sql(features)}),
            final as (
                select feature_rows.*, label_rows.label::double as label__
                from feature_rows
                inner join label_rows using (customer_id)
            )
            select * from final order by customer_id
            """
        ).pl()
    except duckdb.Error as error:
        raise DataError(
            _(
                "Reading the label or features failed: {error}. The label needs the columns customer_id and label, "
                "the features customer_id and numeric columns."
            ).format(error=error)
        ) from error

    feature_names = tuple(name for name in frame.columns if name not in ("customer_id", "cutoff_date", "label__"))
    not_numeric = [name for name in feature_names if not frame[name].dtype.is_numeric() and frame[name].dtype != pl.Boolean]
    if not_numeric:
        raise DataError(
            _("The feature columns {columns} are not numeric; cast or one-hot encode them in the feature query.").format(
                columns=", ".join(not_numeric)
            )
        )
    labels = frame["label__"].to_numpy()
    if np.isnan(labels).any() or not np.isin(labels, (0.0, 1.0)).all():
        raise DataError(_("The label column must be 0 or 1 (or boolean) in every row; fix the label query."))
    matrix = (
        frame.select([pl.col(name).cast(pl.Float32).fill_null(float("nan")) for name in feature_names])
        .to_numpy()
        .astype(np.float32, copy=False)
    )
    return feature_names, np.ascontiguousarray(matrix), labels.astype(np.float32)


def stratified_folds(labels: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Return the fold (0 to n_folds - 1) of each row: each class is shuffled with ``seed`` and dealt round-robin."""
    generator = np.random.default_rng(seed)
    folds = np.empty(labels.size, dtype=np.int64)
    for value in (0.0, 1.0):
        indexes = np.flatnonzero(labels == value)
        generator.shuffle(indexes)
        folds[indexes] = np.arange(indexes.size) % n_folds
    return folds


@dataclass
class ResponseResult:
    """Outcome of ``train_response``: the saved model and its held-out metrics."""

    model_dir: Path
    name: str
    version: str
    metrics: dict[str, float]
    n_train_rows: int
    n_validation_rows: int
    seconds: float


class ResponseModelTrainer:
    """Fit the one-head response model; see the module docstring for the split.

    Parameters
    ----------
    label, features : str
        View name or select query of the label and of the features.
    n_folds, fold : int
        Stratified folds and the one held out for metrics.
    epochs, batch_size, hidden_units, dropout, l2, learning_rate, patience, seed
        As for ``CustomerModelTrainer``.
    class_weight : "balanced" or None
        "balanced" weighs a positive row n_negative / n_positive (at most MAX_POSITIVE_WEIGHT).
    """

    def __init__(
        self,
        *,
        label: str,
        features: str = DEFAULT_FEATURES,
        n_folds: int = 5,
        fold: int = 0,
        epochs: int = 200,
        batch_size: int = 256,
        hidden_units: tuple[int, ...] = (64, 32),
        dropout: float = 0.2,
        l2: float = 1e-4,
        learning_rate: float = 1e-3,
        patience: int = 10,
        class_weight: str | None = "balanced",
        seed: int = 0,
    ):
        self.label = label
        self.features = features
        self.n_folds = n_folds
        self.fold = fold
        self.epochs = epochs
        self.batch_size = batch_size
        self.hidden_units = hidden_units
        self.dropout = dropout
        self.l2 = l2
        self.learning_rate = learning_rate
        self.patience = patience
        self.class_weight = class_weight
        self.seed = seed

    def fit(self, con: duckdb.DuckDBPyConnection) -> ResponseModelTrainer:
        if not (isinstance(self.n_folds, int) and self.n_folds >= 2 and 0 <= self.fold < self.n_folds):
            raise DuckmktError(
                _("Invalid folds: n_folds {n_folds}, fold {fold}; give n_folds >= 2 and 0 <= fold < n_folds.").format(
                    n_folds=self.n_folds, fold=self.fold
                )
            )
        self.feature_names_, matrix, labels = read_response_rows(con, self.label, self.features)
        if labels.size < self.n_folds * 10 or np.unique(labels).size < 2:
            raise DataError(
                _("The label has {rows} rows with {classes} classes; a response model needs both classes and at least {minimum} rows.").format(
                    rows=labels.size, classes=np.unique(labels).size, minimum=self.n_folds * 10
                )
            )

        folds = stratified_folds(labels, self.n_folds, self.seed)
        held_out = folds == self.fold
        training_part = np.flatnonzero(~held_out)
        inner = stratified_folds(labels[training_part], int(round(1 / EARLY_STOPPING_FRACTION)), self.seed + 1) == 0
        fit_rows, stop_rows = training_part[~inner], training_part[inner]

        self.preprocessing_ = network.fit_preprocessing(matrix[fit_rows], self.feature_names_)
        n_positive = float(labels[fit_rows].sum())
        weight = (fit_rows.size - n_positive) / n_positive if self.class_weight == "balanced" else 1.0
        self.positive_weights_ = {"response_prob": float(np.clip(weight, 1.0, MAX_POSITIVE_WEIGHT))}

        keras.utils.set_random_seed(self.seed)
        model = network.build_model(
            self.preprocessing_,
            hidden_units=tuple(self.hidden_units),
            dropout=self.dropout,
            l2=self.l2,
            heads=network.RESPONSE_HEADS,
        )
        network.compile_model(model, learning_rate=self.learning_rate, positive_weights=self.positive_weights_)
        history = model.fit(
            matrix[fit_rows],
            {"response_prob": labels[fit_rows].reshape(-1, 1)},
            validation_data=(matrix[stop_rows], {"response_prob": labels[stop_rows].reshape(-1, 1)}),
            epochs=self.epochs,
            batch_size=self.batch_size,
            shuffle=True,
            verbose=0,
            callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=self.patience, restore_best_weights=True)],
        )
        self.n_epochs_ = len(history.history["loss"])

        raw = network.predict(model, matrix[stop_rows])["response_prob"]
        self.calibration_ = {"response_prob": calibration.fit_platt(raw, labels[stop_rows])}
        self.model_ = network.calibrated_model(model, self.calibration_)

        self.validation_matrix_ = matrix[held_out]
        self.validation_predictions_ = network.predict(self.model_, self.validation_matrix_)
        held_out_labels = labels[held_out]
        self.metrics_ = metrics.response_metrics({"response": held_out_labels}, self.validation_predictions_)
        ranking = probability_metrics(held_out_labels, self.validation_predictions_["response_prob"])
        self.metrics_.update({f"response_{key}": value for key, value in ranking.items() if key.startswith(("gain", "lift"))})
        self.calibration_report_ = calibration.calibration_report(held_out_labels, self.validation_predictions_["response_prob"])
        self.n_train_rows_ = int(fit_rows.size)
        self.n_validation_rows_ = int(held_out.sum())
        return self


def train_response(
    con: duckdb.DuckDBPyConnection,
    *,
    label: str,
    features: str = DEFAULT_FEATURES,
    models_dir: str | Path = "models",
    name: str = "response",
    **trainer_params,
) -> ResponseResult:
    """Train a response model, export it to ONNX, check parity and save ``<models_dir>/<name>/<version>/``."""
    started = time.perf_counter()
    registry.check_model_name(name)
    trainer = ResponseModelTrainer(label=label, features=features, **trainer_params).fit(con)
    onnx_bytes = export.export_onnx(trainer.model_, len(trainer.feature_names_))
    parity = export.check_parity(
        onnx_bytes, trainer.model_, export.parity_rows(trainer.validation_matrix_, trainer.preprocessing_.median)
    )
    metadata = {
        "model_kind": "response",
        "feature_names": list(trainer.feature_names_),
        "input_name": export.INPUT_NAME,
        "output_names": list(network.RESPONSE_HEADS),
        **trainer.preprocessing_.as_metadata(),
        "label_source": label,
        "feature_source": features,
        "n_train_rows": trainer.n_train_rows_,
        "n_validation_rows": trainer.n_validation_rows_,
        "metrics": trainer.metrics_,
        "calibration": {head: {"slope": s, "intercept": i} for head, (s, i) in trainer.calibration_.items()},
        "parity_max_abs_diff": parity,
        "training": {
            "epochs": trainer.epochs,
            "epochs_run": trainer.n_epochs_,
            "seed": trainer.seed,
            "n_folds": trainer.n_folds,
            "fold": trainer.fold,
            "class_weight": trainer.class_weight,
            "positive_weights": trainer.positive_weights_,
        },
        "versions": _versions(),
    }
    report = {"metrics": trainer.metrics_, "calibration": {"response_prob": trainer.calibration_report_}}
    model_dir = registry.save_model(models_dir, name, onnx_bytes, metadata, report)
    return ResponseResult(
        model_dir=model_dir,
        name=name,
        version=model_dir.name,
        metrics=trainer.metrics_,
        n_train_rows=trainer.n_train_rows_,
        n_validation_rows=trainer.n_validation_rows_,
        seconds=time.perf_counter() - started,
    )
