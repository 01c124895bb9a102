"""Baselines the model must beat, scored on the same validation rows.

- purchase and churn: logistic regression on RFM (recency_days, frequency,
  monetary_value), each log1p-transformed and standardized with training
  statistics, fitted by Newton's method (IRLS);
- spend: the spend of the window of the same length just before the cutoff,
  that is the sum of order values in [cutoff - horizon_days, cutoff);
- purchase days: likewise, the distinct days with an order in
  [cutoff - horizon_days, cutoff).

``duckmkt.evaluation`` adds RFM rules and BG/NBD with Gamma-Gamma.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

import duckdb
import numpy as np

from duckmkt.evaluation.logistic import LogisticRegressionIRLS
from duckmkt.training.dataset import LabeledRows, orders_relation
from duckmkt.training.metrics import head_metrics

logger = logging.getLogger(__name__)

RFM_FEATURES = ("recency_days", "frequency", "monetary_value")

__all__ = ["LogisticRegressionIRLS", "RFMScaler", "baseline_metrics", "baseline_predictions", "last_window_spend", "last_window_totals"]

BASELINE_DEFINITIONS = {
    "purchase_prob": "Logistic regression on log1p(recency_days, frequency, monetary_value), standardized.",
    "churn_risk": "Logistic regression on log1p(recency_days, frequency, monetary_value), standardized.",
    "expected_spend": "Spend in [cutoff - horizon_days, cutoff), the window of the same length before the cutoff.",
    "expected_purchases": "Distinct days with an order in [cutoff - horizon_days, cutoff).",
}


class RFMScaler:
    """log1p then standardization of the RFM columns, with NaN set to the training median."""

    def fit(self, rows: LabeledRows) -> RFMScaler:
        raw = self._columns(rows)
        self.median_ = np.nanmedian(raw, axis=0)
        transformed = self._transform_raw(raw)
        self.mean_ = transformed.mean(axis=0)
        self.std_ = np.where(transformed.std(axis=0) > 0, transformed.std(axis=0), 1.0)
        return self

    def transform(self, rows: LabeledRows) -> np.ndarray:
        return (self._transform_raw(self._columns(rows)) - self.mean_) / self.std_

    def _columns(self, rows: LabeledRows) -> np.ndarray:
        indexes = [rows.feature_names.index(name) for name in RFM_FEATURES]
        return rows.matrix[:, indexes].astype(np.float64)

    def _transform_raw(self, raw: np.ndarray) -> np.ndarray:
        filled = np.where(np.isfinite(raw), raw, self.median_)
        return np.log1p(np.maximum(filled, 0.0))


def last_window_spend(con: duckdb.DuckDBPyConnection, rows: LabeledRows, horizon_days: int) -> np.ndarray:
    """Return each row's spend in [cutoff - horizon_days, cutoff), aligned with ``rows``."""
    return last_window_totals(con, rows.cutoff, rows.customer_ids, horizon_days)[0]


def last_window_totals(
    con: duckdb.DuckDBPyConnection,
    cutoff: date,
    customer_ids: np.ndarray,
    horizon_days: int,
    staged_lines: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return each customer's spend and distinct order days in [cutoff - horizon_days, cutoff).

    Orders come from ``staged_lines`` when given (see ``dataset.cached_order_lines``).
    """
    start = cutoff - timedelta(days=horizon_days)
    result = con.execute(
        f"""
        select customer_id, sum(order_value)::double as spend, count(distinct ordered_at::date)::double as n_days
        from {orders_relation(staged_lines)}
        where ordered_at >= ?::timestamp and ordered_at < ?::timestamp
        group by customer_id
        """,
        [start.isoformat(), cutoff.isoformat()],
    ).fetchall()
    by_customer = {customer: (spend, n_days) for customer, spend, n_days in result}
    spend = np.array([by_customer.get(customer, (0.0, 0.0))[0] for customer in customer_ids], dtype=np.float64)
    n_days = np.array([by_customer.get(customer, (0.0, 0.0))[1] for customer in customer_ids], dtype=np.float64)
    return spend, n_days


def baseline_predictions(
    con: duckdb.DuckDBPyConnection,
    train: LabeledRows,
    validation: LabeledRows,
    horizon_days: int,
    staged_lines: str | None = None,
) -> dict[str, np.ndarray]:
    """Fit the RFM baselines on ``train`` and return their predictions on ``validation``."""
    scaler = RFMScaler().fit(train)
    train_x = scaler.transform(train)
    validation_x = scaler.transform(validation)

    predictions = {}
    for head, label in (("purchase_prob", "purchased"), ("churn_risk", "churned")):
        classifier = LogisticRegressionIRLS().fit(train_x, train.labels[label])
        predictions[head] = classifier.predict_proba(validation_x)
        logger.debug("RFM baseline for %s converged in %d Newton steps", head, classifier.n_iter_)
    predictions["expected_spend"], predictions["expected_purchases"] = last_window_totals(
        con, validation.cutoff, validation.customer_ids, horizon_days, staged_lines
    )
    return predictions


def baseline_metrics(
    con: duckdb.DuckDBPyConnection,
    train: LabeledRows,
    validation: LabeledRows,
    horizon_days: int,
    staged_lines: str | None = None,
) -> dict[str, float]:
    """Return the baseline metrics on the validation rows, keyed like the model's metrics."""
    return head_metrics(validation.labels, baseline_predictions(con, train, validation, horizon_days, staged_lines))
