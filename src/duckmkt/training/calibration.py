"""Platt scaling of probability heads, fitted on the out-of-time validation rows."""

from __future__ import annotations

import numpy as np

from duckmkt.evaluation.metrics import EPSILON, expected_calibration_error, reliability_table
from duckmkt.training.baselines import LogisticRegressionIRLS


def logit(probability: np.ndarray) -> np.ndarray:
    clipped = np.clip(np.asarray(probability, dtype=np.float64).ravel(), EPSILON, 1.0 - EPSILON)
    return np.log(clipped) - np.log1p(-clipped)


def fit_platt(probability: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Return (slope, intercept) of the logistic regression of ``labels`` on logit(``probability``)."""
    regression = LogisticRegressionIRLS(l2=1e-6).fit(logit(probability)[:, None], np.asarray(labels).ravel())
    return float(regression.coef_[0]), float(regression.intercept_)


def apply_platt(probability: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """Return sigmoid(slope * logit(probability) + intercept), as the exported PlattCalibration layer computes it."""
    return 1.0 / (1.0 + np.exp(-(slope * logit(probability) + intercept)))


def calibration_report(labels: np.ndarray, probability: np.ndarray, n_bins: int = 10) -> dict[str, object]:
    """Return the expected calibration error and the reliability table of one probability head."""
    return {
        "ece": expected_calibration_error(labels, probability, n_bins),
        "reliability": reliability_table(labels, probability, n_bins),
    }
