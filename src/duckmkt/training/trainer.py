"""Train, evaluate, export and save the customer model.

``CustomerModelTrainer`` follows the scikit-learn contract: parameters in
``__init__``, ``fit`` returns self, learned state ends in ``_``. ``train`` is
the one call the CLI makes: fit, export to ONNX, check parity, save.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import duckdb
import keras
import numpy as np
import onnx
import tensorflow as tf
import tf2onnx

from duckmkt import registry, strategy
from duckmkt.errors import DuckmktError
from duckmkt.i18n import _
from duckmkt.training import baselines, calibration, dataset, export, metrics
from duckmkt.training import model as network
from duckmkt.training import summaries

logger = logging.getLogger(__name__)

# Metric name -> whether a higher value is better.
HIGHER_IS_BETTER = {
    "purchase_auc": True,
    "purchase_log_loss": False,
    "purchase_ece": False,
    "spend_mae": False,
    "spend_rmse": False,
    "churn_auc": True,
    "churn_log_loss": False,
    "churn_ece": False,
    "purchases_mae": False,
}


@dataclass(frozen=True)
class EpochProgress:
    """Losses after one training epoch, passed to the ``progress`` callback."""

    epoch: int
    epochs: int
    loss: float
    val_loss: float

    def message(self) -> str:
        return _("Epoch {epoch}/{epochs}: loss {loss:.4f}, validation loss {val_loss:.4f}").format(
            epoch=self.epoch, epochs=self.epochs, loss=self.loss, val_loss=self.val_loss
        )


@dataclass(frozen=True)
class DataProgress:
    """One step of reading the training data, passed to the ``progress`` callback.

    ``cutoff`` is None for the step that cleans the order lines once, and
    ``validation`` marks the validation cutoff.
    """

    rows: int
    seconds: float
    cutoff: date | None = None
    validation: bool = False

    def message(self) -> str:
        if self.cutoff is None:
            return _("Cleaned the order lines once for every cutoff: {rows:,} lines kept, {seconds:.1f} s").format(
                rows=self.rows, seconds=self.seconds
            )
        if self.validation:
            text = _("Read the validation rows at cutoff {cutoff}: {rows:,} customers, {seconds:.1f} s")
        else:
            text = _("Read the training rows at cutoff {cutoff}: {rows:,} customers, {seconds:.1f} s")
        return text.format(cutoff=self.cutoff.isoformat(), rows=self.rows, seconds=self.seconds)


# Receives an EpochProgress or a DataProgress; both have message().
ProgressCallback = Callable[[EpochProgress | DataProgress], None]


class EpochReporter(keras.callbacks.Callback):
    """Keras callback that passes an ``EpochProgress`` to ``progress`` after each epoch."""

    def __init__(self, progress: ProgressCallback, epochs: int):
        super().__init__()
        self._progress = progress
        self._epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self._progress(
            EpochProgress(
                epoch=epoch + 1,
                epochs=self._epochs,
                loss=float(logs.get("loss", float("nan"))),
                val_loss=float(logs.get("val_loss", float("nan"))),
            )
        )


# Hyperparameter candidates tried in this order by the search; the first is
# the default network. Each entry overrides the trainer's own settings.
SEARCH_SPACE: tuple[dict[str, object], ...] = (
    {},
    {"hidden_units": (64, 32), "dropout": 0.2},
    {"hidden_units": (32, 16), "learning_rate": 1e-3},
    {"hidden_units": (16,), "dropout": 0.0},
    {"hidden_units": (64, 32), "l2": 1e-3},
    {"hidden_units": (128, 64), "dropout": 0.3, "learning_rate": 1e-3},
)

# A positive row never weighs more than this many negative rows.
MAX_POSITIVE_WEIGHT = 20.0


class CustomerModelTrainer:
    """Fit the four-head customer model on out-of-time training and validation rows.

    Parameters
    ----------
    horizon_days : int or None
        Days after a cutoff in which ``purchased``, ``spend`` and ``n_purchases`` are counted; None means 60.
    churn_horizon_days : int or None
        Days after a cutoff without an order that make a customer ``churned``; None means 120.
    train_cutoff, validation_cutoff : date, str (YYYY-MM-DD) or None
        Cutoffs of the training and validation rows; None derives them from the
        latest sale (see ``duckmkt.training.dataset.resolve_window``).
    n_train_cutoffs : int
        Number of training cutoffs whose rows are stacked: train_cutoff and
        the ones ``cutoff_step_days`` apart before it. Every label window ends
        on or before the validation cutoff.
    cutoff_step_days : int or None
        Days between stacked training cutoffs; None means horizon_days.
    epochs : int
        Maximum epochs; early stopping on the validation loss usually ends sooner.
    batch_size : int
    hidden_units : tuple of int
        Width of each hidden ReLU layer.
    dropout : float
    l2 : float
        L2 penalty on the hidden layers' kernels.
    learning_rate : float
        Adam learning rate.
    patience : int
        Epochs without a lower validation loss before training stops; the best weights are kept.
    class_weight : "balanced" or None
        "balanced" weighs the positive rows of each probability head by
        n_negative / n_positive (at most MAX_POSITIVE_WEIGHT); None weighs every row 1.
    calibrate : bool
        Fit Platt scaling of each probability head on the validation rows and
        put it into the exported graph.
    time_budget_seconds : float or None
        Seconds for the hyperparameter search over SEARCH_SPACE; a candidate
        starts only while time is left, and the first always runs. None fits
        the trainer's own settings only.
    max_trials : int or None
        Largest number of search candidates; None means all of SEARCH_SPACE.
    seed : int
        Seed of Python, numpy and TensorFlow, set before each candidate, so a
        rerun on the same data with the same candidates gives the same model.
    cache_order_lines : bool
        Clean the order lines once into a temporary table that every cutoff
        reads (``dataset.cached_order_lines``). False reads the macros as they
        are, for a database without ``mkt.stg_order_lines``.
    """

    def __init__(
        self,
        *,
        horizon_days: int | None = None,
        churn_horizon_days: int | None = None,
        train_cutoff: date | str | None = None,
        validation_cutoff: date | str | None = None,
        n_train_cutoffs: int = 1,
        cutoff_step_days: int | None = None,
        epochs: int = 200,
        batch_size: int = 64,
        hidden_units: tuple[int, ...] = (32, 16),
        dropout: float = 0.1,
        l2: float = 1e-4,
        learning_rate: float = 3e-3,
        patience: int = 20,
        class_weight: str | None = "balanced",
        calibrate: bool = True,
        time_budget_seconds: float | None = None,
        max_trials: int | None = None,
        seed: int = 0,
        cache_order_lines: bool = True,
    ):
        self.horizon_days = horizon_days
        self.churn_horizon_days = churn_horizon_days
        self.train_cutoff = train_cutoff
        self.validation_cutoff = validation_cutoff
        self.n_train_cutoffs = n_train_cutoffs
        self.cutoff_step_days = cutoff_step_days
        self.epochs = epochs
        self.batch_size = batch_size
        self.hidden_units = hidden_units
        self.dropout = dropout
        self.l2 = l2
        self.learning_rate = learning_rate
        self.patience = patience
        self.class_weight = class_weight
        self.calibrate = calibrate
        self.time_budget_seconds = time_budget_seconds
        self.max_trials = max_trials
        self.seed = seed
        self.cache_order_lines = cache_order_lines

    def fit(self, con: duckdb.DuckDBPyConnection, progress: ProgressCallback | None = None) -> CustomerModelTrainer:
        """Read the rows, fit the network and score it and the baselines on the validation rows."""
        _check_class_weight(self.class_weight)
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, (int, np.integer)) or self.epochs < 1:
            raise DuckmktError(_("Invalid epochs {value!r}; give a whole number of at least 1.").format(value=self.epochs))
        # Settings that need no data fail before the order lines are read.
        dataset.check_settings(
            horizon_days=self.horizon_days,
            churn_horizon_days=self.churn_horizon_days,
            train_cutoff=self.train_cutoff,
            validation_cutoff=self.validation_cutoff,
            n_train_cutoffs=self.n_train_cutoffs,
            cutoff_step_days=self.cutoff_step_days,
        )
        report = progress if progress is not None else (lambda _event: None)
        cache = self.cache_order_lines and dataset.macros_take_staged_lines(con)
        if self.cache_order_lines and not cache:
            logger.warning(
                _("The feature macros of this database predate cached order lines; every cutoff cleans the lines "
                  "again. Open the database once without read_only (any duckmkt command does) to update them.")
            )
        if cache:
            started = time.perf_counter()
            with dataset.cached_order_lines(con) as staged_lines:
                n_lines = con.execute(f"select count(*) from {staged_lines}").fetchall()[0][0]
                report(DataProgress(rows=n_lines, seconds=time.perf_counter() - started))
                self._read_data(con, report, staged_lines)
        else:
            self._read_data(con, report, None)

        self.preprocessing_ = network.fit_preprocessing(self.train_rows_.matrix, self.feature_names_)
        logger.info(
            "Training on %d rows at %d cutoffs up to %s, validating on %d rows at %s",
            self.train_rows_.n_rows,
            len(self.train_cutoffs_),
            self.window_.train_cutoff,
            self.validation_rows_.n_rows,
            self.window_.validation_cutoff,
        )

        self.positive_weights_ = _positive_weights(self.train_rows_.labels, self.class_weight)
        self.model_, self.history_, self.params_, self.trials_ = self._search(progress)
        self.n_epochs_ = len(self.history_["loss"])
        self.best_epoch_ = int(np.argmin(self.history_["val_loss"])) + 1

        # network_ is the fitted network; model_ adds the calibration layers.
        self.network_ = self.model_
        raw_predictions = network.predict(self.network_, self.validation_rows_.matrix)
        self.calibration_ = _fit_calibration(raw_predictions, self.validation_rows_.labels) if self.calibrate else {}
        if self.calibration_:
            self.model_ = network.calibrated_model(self.model_, self.calibration_)
        self.validation_predictions_ = network.predict(self.model_, self.validation_rows_.matrix)
        self.metrics_ = metrics.head_metrics(self.validation_rows_.labels, self.validation_predictions_)
        self.calibration_report_ = {
            head: calibration.calibration_report(self.validation_rows_.labels[label], self.validation_predictions_[head])
            for head, label in (("purchase_prob", "purchased"), ("churn_risk", "churned"))
        }
        return self

    def _read_data(self, con: duckdb.DuckDBPyConnection, report: ProgressCallback, staged_lines: str | None) -> None:
        """Resolve the window, read the training and validation rows and score the baselines."""
        self.window_ = dataset.resolve_window(
            con,
            horizon_days=self.horizon_days,
            churn_horizon_days=self.churn_horizon_days,
            train_cutoff=self.train_cutoff,
            validation_cutoff=self.validation_cutoff,
            staged_lines=staged_lines,
        )
        for setting in self.window_.derived:
            logger.info("Using %s = %s (derived from the data)", setting, self.window_.as_dict()[setting])

        def read(cutoff: date, validation: bool = False) -> dataset.LabeledRows:
            started = time.perf_counter()
            rows = dataset.load_rows(con, cutoff, self.window_, staged_lines=staged_lines)
            seconds = time.perf_counter() - started
            report(DataProgress(rows=rows.n_rows, seconds=seconds, cutoff=cutoff, validation=validation))
            return rows

        step_days = self.window_.horizon_days if self.cutoff_step_days is None else self.cutoff_step_days
        self.train_cutoffs_ = dataset.training_cutoffs(self.window_, self.n_train_cutoffs, step_days)
        parts = [read(cutoff) for cutoff in self.train_cutoffs_]
        for part in parts:
            dataset.check_rows(part, "training")
        self.train_rows_ = dataset.stack_rows(parts)
        self.validation_rows_ = read(self.window_.validation_cutoff, validation=True)
        dataset.check_rows(self.validation_rows_, "validation")
        self.feature_names_ = self.train_rows_.feature_names
        # The features of mkt.customer_features at training time, which the
        # model scores first. 'duckmkt monitor' compares later features with them.
        self.scoring_cutoff_ = self.window_.last_sale_day + timedelta(days=1)
        self.scoring_matrix_ = dataset.load_features(con, self.scoring_cutoff_, self.feature_names_, staged_lines)

        # The baselines read orders too, so they are scored while the cached
        # lines exist; they never see the network.
        self.baselines_ = baselines.baseline_metrics(
            con, self.train_rows_, self.validation_rows_, self.window_.horizon_days, staged_lines
        )

    def _candidates(self) -> list[dict[str, object]]:
        own = {
            "hidden_units": tuple(self.hidden_units),
            "dropout": self.dropout,
            "l2": self.l2,
            "learning_rate": self.learning_rate,
        }
        if self.time_budget_seconds is None:
            return [own]
        candidates = [{**own, **overrides} for overrides in SEARCH_SPACE]
        return candidates[: self.max_trials] if self.max_trials is not None else candidates

    def _search(self, progress: ProgressCallback | None):
        """Fit each candidate while the time budget lasts; return the one with the lowest validation loss."""
        started = time.perf_counter()
        best = None
        trials = []
        for index, params in enumerate(self._candidates()):
            elapsed = time.perf_counter() - started
            if index > 0 and elapsed >= self.time_budget_seconds:
                logger.info("Time budget of %.0f s spent after %d candidates", self.time_budget_seconds, index)
                break
            model, history = self._fit_network(params, progress)
            best_val_loss = float(np.min(history["val_loss"]))
            trials.append({**_json_params(params), "best_val_loss": best_val_loss, "epochs_run": len(history["loss"])})
            logger.info("Candidate %d %s: best validation loss %.4f", index + 1, _json_params(params), best_val_loss)
            if best is None or best_val_loss < best[0]:
                best = (best_val_loss, model, history, params)
        _loss, model, history, params = best
        return model, history, _json_params(params), trials

    def _fit_network(
        self, params: dict[str, object], progress: ProgressCallback | None
    ) -> tuple[keras.Model, dict[str, list[float]]]:
        keras.utils.set_random_seed(self.seed)
        model = network.build_model(
            self.preprocessing_, hidden_units=tuple(params["hidden_units"]), dropout=params["dropout"], l2=params["l2"]
        )
        network.compile_model(model, learning_rate=params["learning_rate"], positive_weights=self.positive_weights_)

        # NOTE: early stopping and calibration use the validation rows that
        # the metrics are computed on, so the model's metrics are slightly
        # optimistic next to the baselines, which never see those rows.
        # `duckmkt evaluate` at a later cutoff gives an unbiased comparison.
        callbacks = [
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=self.patience, restore_best_weights=True)
        ]
        if progress is not None:
            callbacks.append(EpochReporter(progress, self.epochs))

        history = model.fit(
            self.train_rows_.matrix,
            _targets(self.train_rows_),
            validation_data=(self.validation_rows_.matrix, _targets(self.validation_rows_)),
            epochs=self.epochs,
            batch_size=self.batch_size,
            shuffle=True,
            verbose=0,
            callbacks=callbacks,
        )
        return model, {key: [float(value) for value in values] for key, values in history.history.items()}


def _check_class_weight(class_weight: str | None) -> None:
    if class_weight not in (None, "balanced"):
        raise DuckmktError(
            _("Invalid class_weight {value!r}; use 'balanced' or None.").format(value=class_weight)
        )


def _positive_weights(labels: dict[str, np.ndarray], class_weight: str | None) -> dict[str, float]:
    """Return the weight of a positive row for each probability head: n_negative / n_positive under "balanced"."""
    if class_weight is None:
        return {}
    weights = {}
    for head, label in (("purchase_prob", "purchased"), ("churn_risk", "churned"), ("response_prob", "response")):
        if label not in labels:
            continue
        n_positive = float(np.sum(labels[label]))
        n_negative = float(labels[label].size - n_positive)
        weight = n_negative / n_positive if n_positive > 0 else 1.0
        weights[head] = float(np.clip(weight, 1.0 / MAX_POSITIVE_WEIGHT, MAX_POSITIVE_WEIGHT))
    return weights


def _fit_calibration(predictions: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> dict[str, tuple[float, float]]:
    pairs = (("purchase_prob", "purchased"), ("churn_risk", "churned"), ("response_prob", "response"))
    return {
        head: calibration.fit_platt(predictions[head], labels[label])
        for head, label in pairs
        if head in predictions and label in labels
    }


def _json_params(params: dict[str, object]) -> dict[str, object]:
    return {key: list(value) if isinstance(value, tuple) else value for key, value in params.items()}


def _targets(rows: dataset.LabeledRows) -> dict[str, np.ndarray]:
    return {
        "purchase_prob": rows.labels["purchased"].reshape(-1, 1),
        "expected_spend": rows.labels["spend"].reshape(-1, 1),
        "churn_risk": rows.labels["churned"].reshape(-1, 1),
        "expected_purchases": rows.labels["n_purchases"].reshape(-1, 1),
    }


@dataclass
class TrainingResult:
    """Outcome of ``train``: the saved model, the settings used, and metrics beside baselines."""

    model_dir: Path
    name: str
    version: str
    settings: dict[str, object]
    derived_settings: tuple[str, ...]
    metrics: dict[str, float]
    baselines: dict[str, float]
    parity_max_abs_diff: float
    n_train_rows: int
    n_validation_rows: int
    n_epochs: int
    best_epoch: int
    seconds: float
    # ONNX Runtime outputs on the validation rows at export time; in memory only.
    validation_predictions: dict[str, np.ndarray] = field(repr=False)

    def comparison(self) -> list[tuple[str, float, float, bool]]:
        """Return (metric, model, baseline, model is better) for each metric."""
        rows = []
        for name, higher in HIGHER_IS_BETTER.items():
            model_value, baseline_value = self.metrics[name], self.baselines[name]
            better = model_value > baseline_value if higher else model_value < baseline_value
            rows.append((name, model_value, baseline_value, better))
        return rows


def _package_version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def _versions() -> dict[str, object]:
    return {
        "duckmkt": _package_version("duckmkt"),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tf2onnx": tf2onnx.__version__,
        "onnx": onnx.__version__,
        "opset": export.OPSET,
    }


def build_metadata(trainer: CustomerModelTrainer, thresholds: dict[str, float], parity: float) -> dict[str, object]:
    """Return the metadata of a fitted trainer: aggregates and settings only, no customer rows or ids."""
    window = trainer.window_
    return {
        "feature_names": list(trainer.feature_names_),
        "input_name": export.INPUT_NAME,
        "output_names": list(network.HEADS),
        **trainer.preprocessing_.as_metadata(),
        "label_definitions": dict(dataset.LABEL_DEFINITIONS),
        **window.as_dict(),
        "model_kind": "customer",
        "train_cutoffs": [cutoff.isoformat() for cutoff in trainer.train_cutoffs_],
        "n_train_rows": trainer.train_rows_.n_rows,
        "n_validation_rows": trainer.validation_rows_.n_rows,
        "metrics": trainer.metrics_,
        "calibration": {head: {"slope": slope, "intercept": intercept} for head, (slope, intercept) in trainer.calibration_.items()},
        "baselines": trainer.baselines_,
        "baseline_definitions": dict(baselines.BASELINE_DEFINITIONS),
        "strategy_thresholds": thresholds,
        "parity_max_abs_diff": parity,
        "training": {
            "epochs": trainer.epochs,
            "epochs_run": trainer.n_epochs_,
            "best_epoch": trainer.best_epoch_,
            "seed": trainer.seed,
            "class_weight": trainer.class_weight,
            "positive_weights": trainer.positive_weights_,
            "hyperparameters": trainer.params_,
            "search": {"time_budget_seconds": trainer.time_budget_seconds, "trials": trainer.trials_},
        },
        "versions": _versions(),
    }


def build_report(trainer: CustomerModelTrainer) -> dict[str, object]:
    """Return the report: each validation metric beside its baseline."""
    return {
        **trainer.window_.as_dict(),
        "train_cutoffs": [cutoff.isoformat() for cutoff in trainer.train_cutoffs_],
        "n_train_rows": trainer.train_rows_.n_rows,
        "n_validation_rows": trainer.validation_rows_.n_rows,
        "metrics": {
            name: {
                "model": trainer.metrics_[name],
                "baseline": trainer.baselines_[name],
                "higher_is_better": higher,
            }
            for name, higher in HIGHER_IS_BETTER.items()
        },
        "baseline_definitions": dict(baselines.BASELINE_DEFINITIONS),
        "calibration": trainer.calibration_report_,
    }


def train(
    con: duckdb.DuckDBPyConnection,
    *,
    models_dir: str | Path = "models",
    name: str = "customer",
    horizon_days: int | None = None,
    churn_horizon_days: int | None = None,
    train_cutoff: date | str | None = None,
    validation_cutoff: date | str | None = None,
    epochs: int = 200,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    **trainer_params,
) -> TrainingResult:
    """Train the customer model, export it to ONNX and save ``<models_dir>/<name>/<version>/``.

    Settings left as None are derived from the data; ``TrainingResult.settings``
    and ``derived_settings`` report the values used. ``trainer_params`` go to
    ``CustomerModelTrainer``. Raises DataError when the data cannot support
    training, ExportError when ONNX Runtime disagrees with Keras, ModelError
    when the folder cannot be written.
    """
    started = time.perf_counter()
    # An invalid name would otherwise fail only after the whole training run.
    registry.check_model_name(name)
    trainer = CustomerModelTrainer(
        horizon_days=horizon_days,
        churn_horizon_days=churn_horizon_days,
        train_cutoff=train_cutoff,
        validation_cutoff=validation_cutoff,
        epochs=epochs,
        seed=seed,
        **trainer_params,
    ).fit(con, progress=progress)

    n_features = len(trainer.feature_names_)
    onnx_bytes = export.export_onnx(trainer.model_, n_features)
    parity = export.check_parity(
        onnx_bytes, trainer.model_, export.parity_rows(trainer.validation_rows_.matrix, trainer.preprocessing_.median)
    )
    logger.info("ONNX Runtime matches Keras within %.3g", parity)

    # Thresholds come from the ONNX outputs, the numbers scoring will see.
    onnx_predictions = export.run_onnx(onnx_bytes, trainer.validation_rows_.matrix)
    monetary_value = trainer.validation_rows_.matrix[:, list(trainer.feature_names_).index("monetary_value")]
    thresholds = strategy.compute_thresholds({**onnx_predictions, "monetary_value": monetary_value})

    metadata = build_metadata(trainer, thresholds, parity)
    # Aggregates for explain_customer and 'duckmkt monitor': background, importance, distributions.
    metadata.update(summaries.build_summaries(trainer, onnx_bytes))
    model_dir = registry.save_model(models_dir, name, onnx_bytes, metadata, build_report(trainer))
    result = TrainingResult(
        model_dir=model_dir,
        name=name,
        version=model_dir.name,
        settings=trainer.window_.as_dict(),
        derived_settings=trainer.window_.derived,
        metrics=trainer.metrics_,
        baselines=trainer.baselines_,
        parity_max_abs_diff=parity,
        n_train_rows=trainer.train_rows_.n_rows,
        n_validation_rows=trainer.validation_rows_.n_rows,
        n_epochs=trainer.n_epochs_,
        best_epoch=trainer.best_epoch_,
        seconds=time.perf_counter() - started,
        validation_predictions=onnx_predictions,
    )
    for metric, model_value, baseline_value, better in result.comparison():
        logger.info("%s: model %.4f, baseline %.4f%s", metric, model_value, baseline_value, "" if better else " (baseline better)")
    return result
