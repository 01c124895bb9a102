"""Baselines the model must beat, scored on the same validation rows.

- purchase and churn: logistic regression on RFM (recency_days, frequency,
  monetary_value), each log1p-transformed and standardized with training
  statistics, fitted by Newton's method (IRLS);
- spend: the spend of the window of the same length just before the cutoff,
  that is the sum of order values in [cutoff - horizon_days, cutoff).
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

import duckdb
import numpy as np

from duckmkt.training.dataset import LabeledRows
from duckmkt.training.metrics import head_metrics

logger = logging.getLogger(__name__)

RFM_FEATURES = ("recency_days", "frequency", "monetary_value")

BASELINE_DEFINITIONS = {
    "purchase_prob": "Logistic regression on log1p(recency_days, frequency, monetary_value), standardized.",
    "churn_risk": "Logistic regression on log1p(recency_days, frequency, monetary_value), standardized.",
    "expected_spend": "Spend in [cutoff - horizon_days, cutoff), the window of the same length before the cutoff.",
}


class LogisticRegressionIRLS:
    """Binary logistic regression fitted by Newton's method, with a small L2 penalty for stability.

    Parameters
    ----------
    l2 : float
        Penalty on the squared weights (not on the intercept).
    max_iter : int
        Maximum Newton steps.
    tol : float
        Stop when no weight moves by more than this.
    """

    def __init__(self, l2: float = 1e-4, max_iter: int = 50, tol: float = 1e-8):
        self.l2 = l2
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, x: np.ndarray, y: np.ndarray) -> LogisticRegressionIRLS:
        design = np.column_stack([np.ones(len(x)), np.asarray(x, dtype=np.float64)])
        y = np.asarray(y, dtype=np.float64).ravel()
        penalty = np.full(design.shape[1], self.l2)
        penalty[0] = 0.0

        weights = np.zeros(design.shape[1])
        for iteration in range(self.max_iter):
            prob = _sigmoid(design @ weights)
            gradient = design.T @ (prob - y) + penalty * weights
            hessian = (design * (prob * (1.0 - prob))[:, None]).T @ design + np.diag(penalty + 1e-9)
            step = np.linalg.solve(hessian, gradient)
            weights -= step
            if np.max(np.abs(step)) < self.tol:
                break
        self.coef_ = weights[1:]
        self.intercept_ = float(weights[0])
        self.n_iter_ = iteration + 1
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Return the probability of the positive class for each row."""
        return _sigmoid(np.asarray(x, dtype=np.float64) @ self.coef_ + self.intercept_)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


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
    cutoff: date = rows.cutoff
    start = cutoff - timedelta(days=horizon_days)
    result = con.execute(
        """
        select customer_id, sum(order_value)::double as spend
        from mkt.int_orders
        where ordered_at >= ?::timestamp and ordered_at < ?::timestamp
        group by customer_id
        """,
        [start.isoformat(), cutoff.isoformat()],
    ).fetchall()
    spend_by_customer = dict(result)
    return np.array([spend_by_customer.get(customer, 0.0) for customer in rows.customer_ids], dtype=np.float64)


def baseline_predictions(
    con: duckdb.DuckDBPyConnection, train: LabeledRows, validation: LabeledRows, horizon_days: int
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
    predictions["expected_spend"] = last_window_spend(con, validation, horizon_days)
    return predictions


def baseline_metrics(
    con: duckdb.DuckDBPyConnection, train: LabeledRows, validation: LabeledRows, horizon_days: int
) -> dict[str, float]:
    """Return the baseline metrics on the validation rows, keyed like the model's metrics."""
    return head_metrics(validation.labels, baseline_predictions(con, train, validation, horizon_days))
