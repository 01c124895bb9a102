"""Validation metrics of the customer model, keyed ``<label>_<metric>``.

The metric functions live in ``duckmkt.evaluation.metrics`` (numpy only).
"""

from __future__ import annotations

import numpy as np

from duckmkt.evaluation.metrics import (
    EPSILON,
    expected_calibration_error,
    log_loss,
    mean_absolute_error,
    roc_auc,
    root_mean_squared_error,
)

__all__ = [
    "EPSILON",
    "expected_calibration_error",
    "head_metrics",
    "log_loss",
    "mean_absolute_error",
    "response_metrics",
    "roc_auc",
    "root_mean_squared_error",
]


def head_metrics(labels: dict[str, np.ndarray], predictions: dict[str, np.ndarray]) -> dict[str, float]:
    """Return the metrics of the customer model's heads; a head missing from ``predictions`` is skipped."""
    result = {
        "purchase_auc": roc_auc(labels["purchased"], predictions["purchase_prob"]),
        "purchase_log_loss": log_loss(labels["purchased"], predictions["purchase_prob"]),
        "purchase_ece": expected_calibration_error(labels["purchased"], predictions["purchase_prob"]),
        "spend_mae": mean_absolute_error(labels["spend"], predictions["expected_spend"]),
        "spend_rmse": root_mean_squared_error(labels["spend"], predictions["expected_spend"]),
        "churn_auc": roc_auc(labels["churned"], predictions["churn_risk"]),
        "churn_log_loss": log_loss(labels["churned"], predictions["churn_risk"]),
        "churn_ece": expected_calibration_error(labels["churned"], predictions["churn_risk"]),
    }
    if "expected_purchases" in predictions and "n_purchases" in labels:
        result["purchases_mae"] = mean_absolute_error(labels["n_purchases"], predictions["expected_purchases"])
    return result


def response_metrics(labels: dict[str, np.ndarray], predictions: dict[str, np.ndarray]) -> dict[str, float]:
    """Return the metrics of a response model's one head."""
    return {
        "response_auc": roc_auc(labels["response"], predictions["response_prob"]),
        "response_log_loss": log_loss(labels["response"], predictions["response_prob"]),
        "response_ece": expected_calibration_error(labels["response"], predictions["response_prob"]),
    }
