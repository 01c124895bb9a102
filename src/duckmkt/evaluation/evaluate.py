"""Out-of-time evaluation of a saved customer model beside the standard baselines, on the same rows.

The evaluation rows are the customers with a sale before ``cutoff``; their
labels are read from the ``horizon_days`` after it. Every method sees only
sales before the cutoff:

- ``duckmkt``: the saved ONNX model, run with ONNX Runtime;
- ``rfm_rules``: the RFM score (recency, frequency and monetary quintiles
  summed, 3 to 15) ranks purchase and churn; spend and purchase days are
  those of the window of the same length before the cutoff;
- ``rfm_logistic``: logistic regression on log1p(recency, frequency,
  monetary value), fitted on the customers at ``cutoff - horizon_days``
  with their labels in [cutoff - horizon_days, cutoff);
- ``bgnbd``: BG/NBD for purchases and churn, with Gamma-Gamma for spend,
  fitted on all sales before the cutoff.

Importing this module never imports TensorFlow.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import onnxruntime as ort

from duckmkt import btyd
from duckmkt.errors import DataError, DuckmktError, ModelError
from duckmkt.evaluation import metrics
from duckmkt.evaluation.logistic import LogisticRegressionIRLS
from duckmkt.i18n import _
from duckmkt.registry import verify_model

logger = logging.getLogger(__name__)

METHODS = ("duckmkt", "rfm_rules", "rfm_logistic", "bgnbd")
RFM_COLUMNS = ("recency_days", "frequency", "monetary_value")

# Metric name -> whether a higher value is better.
HIGHER_IS_BETTER = {
    "auc": True,
    "gain_10": True,
    "gain_20": True,
    "lift_10": True,
    "lift_20": True,
    "log_loss": False,
    "ece": False,
    "mae": False,
    "rmse": False,
}


@dataclass
class EvaluationRows:
    """Features, RFM columns and labels of the customers active before one cutoff, ordered by customer_id."""

    cutoff: date
    customer_ids: np.ndarray = field(repr=False)
    matrix: np.ndarray = field(repr=False)
    rfm: np.ndarray = field(repr=False)
    labels: dict[str, np.ndarray] = field(repr=False)

    @property
    def n_rows(self) -> int:
        return int(self.customer_ids.size)


@dataclass
class EvaluationResult:
    """Metrics of every method, keyed method -> head -> metric, and the settings used."""

    model_dir: Path
    model_version: str
    cutoff: date
    horizon_days: int
    churn_horizon_days: int | None
    n_rows: int
    metrics: dict[str, dict[str, dict[str, float]]]
    btyd_params: dict[str, float]
    # Factor applied to the model's amounts when its horizon differs from the evaluation's.
    horizon_scale: float

    def table(self) -> list[tuple[str, str, str, float]]:
        """Return (head, metric, method, value) rows in a stable order, skipping NaN values."""
        rows = []
        heads = ("purchase", "purchases", "spend", "churn")
        for head in heads:
            for metric in HIGHER_IS_BETTER:
                for method in METHODS:
                    value = self.metrics.get(method, {}).get(head, {}).get(metric)
                    if value is not None and np.isfinite(value):
                        rows.append((head, metric, method, value))
        return rows

    def best_method(self, head: str, metric: str) -> str | None:
        """Return the method with the best value of ``metric`` for ``head``, or None when no method has it."""
        values = {
            method: self.metrics.get(method, {}).get(head, {}).get(metric)
            for method in METHODS
        }
        values = {method: value for method, value in values.items() if value is not None and np.isfinite(value)}
        if not values:
            return None
        pick = max if HIGHER_IS_BETTER[metric] else min
        return pick(values, key=values.get)


def load_evaluation_rows(
    con: duckdb.DuckDBPyConnection,
    cutoff: date,
    horizon_days: int,
    churn_horizon_days: int | None,
    feature_names: list[str],
) -> EvaluationRows:
    """Read the features at ``cutoff`` and the labels after it; churned is NaN without a churn horizon."""
    churn_days = churn_horizon_days if churn_horizon_days is not None else horizon_days
    selected = ", ".join(f"features.{name}::double" for name in [*feature_names, *RFM_COLUMNS])
    rows = con.execute(
        f"""
        select
            features.customer_id,
            {selected},
            labels.purchased::double,
            labels.spend::double,
            labels.churned::double,
            days.n_purchase_days
        from mkt.customer_features_at($cutoff::date) as features
        inner join mkt.customer_labels_at($cutoff::date, $horizon_days, $churn_days) as labels using (customer_id)
        inner join mkt.purchase_days_at($cutoff::date, $horizon_days) as days using (customer_id)
        order by features.customer_id
        """,
        {"cutoff": cutoff.isoformat(), "horizon_days": horizon_days, "churn_days": max(churn_days, horizon_days)},
    ).fetchall()
    if not rows:
        raise DataError(
            _("No customer has a sale before the evaluation cutoff {cutoff}; choose a later cutoff.").format(cutoff=cutoff)
        )
    n_features = len(feature_names)
    values = np.array([row[1:] for row in rows], dtype=np.float64)
    labels = {
        "purchased": values[:, n_features + 3],
        "spend": values[:, n_features + 4],
        "churned": values[:, n_features + 5] if churn_horizon_days is not None else np.full(len(rows), np.nan),
        "n_purchases": values[:, n_features + 6],
    }
    return EvaluationRows(
        cutoff=cutoff,
        customer_ids=np.array([row[0] for row in rows], dtype=object),
        matrix=np.ascontiguousarray(values[:, :n_features], dtype=np.float32),
        rfm=values[:, n_features : n_features + 3],
        labels=labels,
    )


def model_predictions(model_dir: Path, metadata: dict, matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Run the verified ONNX model on ``matrix``; return every output as a flat float64 array."""
    session = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    outputs = session.run(names, {metadata.get("input_name", "features"): matrix})
    return {name: output.reshape(-1).astype(np.float64) for name, output in zip(names, outputs)}


def rfm_score(rfm: np.ndarray) -> np.ndarray:
    """Return the RFM score: quintile of recency (more recent is higher), frequency and monetary value, summed (3 to 15)."""
    recency = -np.nan_to_num(rfm[:, 0], nan=np.inf)
    score = np.zeros(rfm.shape[0])
    for column in (recency, np.nan_to_num(rfm[:, 1]), np.nan_to_num(rfm[:, 2])):
        # Average ranks split ties evenly, so a tied value gets one quintile.
        ranks = _average_ranks(column)
        score += np.ceil(ranks / column.size * 5.0)
    return score


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(values.size)
    ranks[order] = np.arange(1, values.size + 1)
    _unique, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse]


def _rfm_design(rfm: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """log1p of the RFM columns, standardized with the statistics of ``reference``; NaN becomes the reference median."""
    median = np.nanmedian(reference, axis=0)

    def transform(matrix):
        return np.log1p(np.maximum(np.where(np.isfinite(matrix), matrix, median), 0.0))

    base = transform(reference)
    mean, std = base.mean(axis=0), base.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (transform(rfm) - mean) / std


def rfm_logistic_predictions(
    con: duckdb.DuckDBPyConnection, rows: EvaluationRows, horizon_days: int, churn_horizon_days: int | None
) -> dict[str, np.ndarray]:
    """Fit logistic regressions on RFM at ``cutoff - horizon`` (labels end at the cutoff) and predict ``rows``."""
    predictions = {}
    heads = [("purchase", "purchased", horizon_days)]
    if churn_horizon_days is not None:
        heads.append(("churn", "churned", churn_horizon_days))
    for head, label, days in heads:
        fit_cutoff = rows.cutoff - timedelta(days=days)
        fit_rows = load_evaluation_rows(con, fit_cutoff, horizon_days, churn_horizon_days and days, [])
        if np.unique(fit_rows.labels[label]).size < 2:
            raise DataError(
                _("The RFM logistic baseline at {cutoff} has one class of {label}; choose a later evaluation cutoff.").format(
                    cutoff=fit_cutoff, label=label
                )
            )
        design = _rfm_design(fit_rows.rfm, fit_rows.rfm)
        regression = LogisticRegressionIRLS().fit(design, fit_rows.labels[label])
        predictions[head] = regression.predict_proba(_rfm_design(rows.rfm, fit_rows.rfm))
    return predictions


def last_window(con: duckdb.DuckDBPyConnection, rows: EvaluationRows, horizon_days: int) -> tuple[np.ndarray, np.ndarray]:
    """Return each row's spend and distinct order days in [cutoff - horizon_days, cutoff)."""
    result = con.execute(
        """
        select customer_id, sum(order_value)::double, count(distinct ordered_at::date)::double
        from mkt.int_orders
        where ordered_at >= ?::timestamp and ordered_at < ?::timestamp
        group by customer_id
        """,
        [(rows.cutoff - timedelta(days=horizon_days)).isoformat(), rows.cutoff.isoformat()],
    ).fetchall()
    by_customer = {customer: (spend, n_days) for customer, spend, n_days in result}
    spend = np.array([by_customer.get(customer, (0.0, 0.0))[0] for customer in rows.customer_ids])
    n_days = np.array([by_customer.get(customer, (0.0, 0.0))[1] for customer in rows.customer_ids])
    return spend, n_days


def _head_metrics(
    labels: dict[str, np.ndarray],
    *,
    purchase: np.ndarray | None = None,
    purchase_is_probability: bool = True,
    purchases: np.ndarray | None = None,
    spend: np.ndarray | None = None,
    churn: np.ndarray | None = None,
    churn_is_probability: bool = True,
) -> dict[str, dict[str, float]]:
    result = {}
    if purchase is not None:
        result["purchase"] = metrics.probability_metrics(labels["purchased"], purchase, is_probability=purchase_is_probability)
    if purchases is not None:
        result["purchases"] = {
            "mae": metrics.mean_absolute_error(labels["n_purchases"], purchases),
            "rmse": metrics.root_mean_squared_error(labels["n_purchases"], purchases),
        }
    if spend is not None:
        result["spend"] = metrics.amount_metrics(labels["spend"], spend)
    if churn is not None and np.all(np.isfinite(labels["churned"])):
        result["churn"] = metrics.probability_metrics(labels["churned"], churn, is_probability=churn_is_probability)
    return result


def evaluate(
    con: duckdb.DuckDBPyConnection,
    model_dir: str | Path,
    *,
    cutoff: date | str,
    horizon_days: int | None = None,
    churn_horizon_days: int | None = None,
) -> EvaluationResult:
    """Evaluate the customer model in ``model_dir`` and the baselines on the customers active before ``cutoff``.

    ``horizon_days`` defaults to the model's; with another horizon the
    model's expected_spend and expected_purchases are scaled by the ratio of
    the horizons, and its purchase_prob is used as a ranking only (no log
    loss or ECE). Churn metrics need ``churn_horizon_days`` (default: the
    model's when the horizons match). Raises DataError when the labels after
    the cutoff are not fully observed.
    """
    model_dir = Path(model_dir)
    metadata = verify_model(model_dir)
    if metadata.get("model_kind", "customer") != "customer":
        raise ModelError(
            _("Model {path} is a {kind} model; duckmkt evaluate compares customer models only.").format(
                path=model_dir, kind=metadata.get("model_kind")
            )
        )
    cutoff = date.fromisoformat(str(cutoff)) if not isinstance(cutoff, date) else cutoff
    model_horizon = int(metadata["horizon_days"])
    horizon_days = model_horizon if horizon_days is None else int(horizon_days)
    if churn_horizon_days is None and horizon_days == model_horizon:
        churn_horizon_days = int(metadata["churn_horizon_days"])
    _check_labels_observed(con, cutoff, max(horizon_days, churn_horizon_days or 0))

    rows = load_evaluation_rows(con, cutoff, horizon_days, churn_horizon_days, list(metadata["feature_names"]))
    logger.info("Evaluating on %d customers at %s over %d days", rows.n_rows, cutoff, horizon_days)

    # NOTE: scaling by the horizon ratio assumes a constant purchase rate
    # over the longer horizon; the model never saw labels that long.
    scale = horizon_days / model_horizon
    same_horizon = horizon_days == model_horizon
    model_output = model_predictions(model_dir, metadata, rows.matrix)
    results = {
        "duckmkt": _head_metrics(
            rows.labels,
            purchase=model_output["purchase_prob"],
            purchase_is_probability=same_horizon,
            purchases=model_output["expected_purchases"] * scale if "expected_purchases" in model_output else None,
            spend=model_output["expected_spend"] * scale,
            churn=model_output["churn_risk"] if same_horizon else None,
        )
    }

    previous_spend, previous_days = last_window(con, rows, horizon_days)
    score = rfm_score(rows.rfm)
    results["rfm_rules"] = _head_metrics(
        rows.labels,
        purchase=score,
        purchase_is_probability=False,
        purchases=previous_days,
        spend=previous_spend,
        churn=-score,
        churn_is_probability=False,
    )

    try:
        logistic = rfm_logistic_predictions(con, rows, horizon_days, churn_horizon_days)
    except DataError as error:
        # The regression needs fully observed labels before the cutoff: a
        # horizon as long as the history (CDNOW's 273 days) leaves none.
        logger.warning(_("Skipping the RFM logistic baseline: %s"), error)
        results["rfm_logistic"] = {}
    else:
        results["rfm_logistic"] = _head_metrics(rows.labels, purchase=logistic["purchase"], churn=logistic.get("churn"))

    btyd_predictions, params = btyd.fit_predict(con, cutoff, horizon_days)
    if not np.array_equal(btyd_predictions.customer_ids, rows.customer_ids):
        raise DuckmktError(_("The BG/NBD summary and the feature rows list different customers; report this as a bug."))
    bgnbd = _head_metrics(
        rows.labels,
        purchase=btyd_predictions.purchase_prob,
        purchases=btyd_predictions.expected_purchases,
        spend=btyd_predictions.expected_spend,
    )
    # The expected number of purchases ranks buyers better than P(purchase)
    # does on CDNOW, so the ranking metrics use it and the probability
    # metrics keep P(purchase).
    ranking = metrics.probability_metrics(rows.labels["purchased"], btyd_predictions.expected_purchases, is_probability=False)
    bgnbd["purchase"].update({key: value for key, value in ranking.items() if key not in ("log_loss", "ece")})
    if churn_horizon_days is not None:
        churn_predictions, _params = btyd.fit_predict(con, cutoff, churn_horizon_days)
        bgnbd.update(_head_metrics(rows.labels, churn=1.0 - churn_predictions.purchase_prob))
    results["bgnbd"] = bgnbd

    return EvaluationResult(
        model_dir=model_dir,
        model_version=str(metadata["version"]),
        cutoff=cutoff,
        horizon_days=horizon_days,
        churn_horizon_days=churn_horizon_days,
        n_rows=rows.n_rows,
        metrics=results,
        btyd_params=params,
        horizon_scale=scale,
    )


def _check_labels_observed(con: duckdb.DuckDBPyConnection, cutoff: date, days: int) -> None:
    last_day = con.execute("select max(ordered_at)::date from mkt.int_orders").fetchall()[0][0]
    if last_day is None:
        raise DataError(_("The database has no sales; load order lines with 'duckmkt load' first."))
    end = cutoff + timedelta(days=days)
    if end > last_day + timedelta(days=1):
        raise DataError(
            _(
                "The evaluation window from {cutoff} over {days} days ends after the latest sale day {last}; "
                "choose a cutoff on or before {latest} or a shorter horizon."
            ).format(cutoff=cutoff, days=days, last=last_day, latest=last_day + timedelta(days=1) - timedelta(days=days))
        )
