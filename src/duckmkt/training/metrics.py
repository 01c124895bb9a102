"""Validation metrics in numpy: ROC AUC, log loss and mean absolute error."""

from __future__ import annotations

import numpy as np

# Probabilities are clipped to [EPSILON, 1 - EPSILON] so a confident wrong
# prediction costs a large but finite log loss.
EPSILON = 1e-7


def roc_auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Return the area under the ROC curve, from the Mann-Whitney rank statistic.

    Tied scores get their average rank, so a tie between a positive and a
    negative row counts one half. Returns NaN when ``y_true`` has one class.
    """
    y_true = np.asarray(y_true).ravel().astype(bool)
    y_score = np.asarray(y_score, dtype=np.float64).ravel()
    n_positive = int(y_true.sum())
    n_negative = y_true.size - n_positive
    if n_positive == 0 or n_negative == 0:
        return float("nan")

    order = np.argsort(y_score, kind="mergesort")
    sorted_scores = y_score[order]
    ranks = np.empty(y_score.size, dtype=np.float64)
    ranks[order] = np.arange(1, y_score.size + 1, dtype=np.float64)

    # Replace the ranks of each run of equal scores with their mean.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    for start, count in zip(first[counts > 1], counts[counts > 1]):
        ranks[order[start : start + count]] = start + (count + 1) / 2.0

    rank_sum = ranks[y_true].sum()
    return float((rank_sum - n_positive * (n_positive + 1) / 2.0) / (n_positive * n_negative))


def log_loss(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    """Return the mean binary cross-entropy of ``y_prob`` against 0/1 labels."""
    y_true = np.asarray(y_true, dtype=np.float64).ravel()
    y_prob = np.clip(np.asarray(y_prob, dtype=np.float64).ravel(), EPSILON, 1.0 - EPSILON)
    return float(-np.mean(y_true * np.log(y_prob) + (1.0 - y_true) * np.log1p(-y_prob)))


def mean_absolute_error(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Return the mean absolute difference, in the unit of the inputs."""
    y_true = np.asarray(y_true, dtype=np.float64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.float64).ravel()
    return float(np.mean(np.abs(y_true - y_pred)))


def head_metrics(labels: dict[str, np.ndarray], predictions: dict[str, np.ndarray]) -> dict[str, float]:
    """Return the metrics of the three heads, keyed ``<label>_<metric>``."""
    return {
        "purchase_auc": roc_auc(labels["purchased"], predictions["purchase_prob"]),
        "purchase_log_loss": log_loss(labels["purchased"], predictions["purchase_prob"]),
        "spend_mae": mean_absolute_error(labels["spend"], predictions["expected_spend"]),
        "churn_auc": roc_auc(labels["churned"], predictions["churn_risk"]),
        "churn_log_loss": log_loss(labels["churned"], predictions["churn_risk"]),
    }
