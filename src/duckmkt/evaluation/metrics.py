"""Model-quality metrics in numpy: ranking, probability, calibration and amount errors.

Importing this module never imports TensorFlow, so ``duckmkt evaluate`` and
the benchmarks can score ONNX models and baselines with it.
"""

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


def root_mean_squared_error(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Return the square root of the mean squared difference, in the unit of the inputs."""
    y_true = np.asarray(y_true, dtype=np.float64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.float64).ravel()
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)))


def _top_rows(y_score: np.ndarray, fraction: float) -> np.ndarray:
    """Return the indexes of the ceil(fraction * N) highest scores; ties keep the original row order."""
    n_top = int(np.ceil(fraction * y_score.size))
    order = np.argsort(-np.asarray(y_score, dtype=np.float64).ravel(), kind="mergesort")
    return order[:n_top]


def gain_at(y_true: np.ndarray, y_score: np.ndarray, fraction: float) -> float:
    """Return the share of all positives (or of the total amount) found in the top ``fraction`` of rows by score.

    With 0/1 labels this is the cumulative gain; with amounts (spend) it is
    the share of the total amount captured. NaN when the total is 0.
    """
    y_true = np.asarray(y_true, dtype=np.float64).ravel()
    total = y_true.sum()
    if total <= 0:
        return float("nan")
    return float(y_true[_top_rows(y_score, fraction)].sum() / total)


def lift_at(y_true: np.ndarray, y_score: np.ndarray, fraction: float) -> float:
    """Return the gain at ``fraction`` divided by the share of rows targeted (1.0 is a random ranking)."""
    y_score = np.asarray(y_score).ravel()
    n_top = int(np.ceil(fraction * y_score.size))
    if n_top == 0:
        return float("nan")
    return gain_at(y_true, y_score, fraction) / (n_top / y_score.size)


def reliability_table(y_true: np.ndarray, y_prob: np.ndarray, n_bins: int = 10) -> list[dict[str, float]]:
    """Return one row per non-empty equal-width probability bin: bounds, rows, mean prediction, observed rate.

    The last bin includes 1.0.
    """
    y_true = np.asarray(y_true, dtype=np.float64).ravel()
    y_prob = np.clip(np.asarray(y_prob, dtype=np.float64).ravel(), 0.0, 1.0)
    bins = np.minimum((y_prob * n_bins).astype(int), n_bins - 1)
    table = []
    for index in range(n_bins):
        in_bin = bins == index
        if not in_bin.any():
            continue
        table.append(
            {
                "low": index / n_bins,
                "high": (index + 1) / n_bins,
                "n_rows": int(in_bin.sum()),
                "mean_predicted": float(y_prob[in_bin].mean()),
                "observed_rate": float(y_true[in_bin].mean()),
            }
        )
    return table


def expected_calibration_error(y_true: np.ndarray, y_prob: np.ndarray, n_bins: int = 10) -> float:
    """Return the ECE: the row-weighted mean of |observed rate - mean prediction| over equal-width bins."""
    table = reliability_table(y_true, y_prob, n_bins)
    n_rows = sum(row["n_rows"] for row in table)
    if n_rows == 0:
        return float("nan")
    return float(sum(row["n_rows"] * abs(row["observed_rate"] - row["mean_predicted"]) for row in table) / n_rows)


def probability_metrics(y_true: np.ndarray, y_prob: np.ndarray, *, is_probability: bool = True) -> dict[str, float]:
    """Return AUC, gain and lift at the top 10 % and 20 %, and for probabilities also log loss and ECE.

    A score that is not a probability (an expected count, say) gets the
    ranking metrics only; log loss and ECE are NaN.
    """
    result = {
        "auc": roc_auc(y_true, y_prob),
        "gain_10": gain_at(y_true, y_prob, 0.10),
        "gain_20": gain_at(y_true, y_prob, 0.20),
        "lift_10": lift_at(y_true, y_prob, 0.10),
        "lift_20": lift_at(y_true, y_prob, 0.20),
        "log_loss": float("nan"),
        "ece": float("nan"),
    }
    if is_probability:
        result["log_loss"] = log_loss(y_true, y_prob)
        result["ece"] = expected_calibration_error(y_true, y_prob)
    return result


def amount_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Return MAE, RMSE and the share of the total amount captured by the top 10 % and 20 % of predictions."""
    return {
        "mae": mean_absolute_error(y_true, y_pred),
        "rmse": root_mean_squared_error(y_true, y_pred),
        "gain_10": gain_at(y_true, y_pred, 0.10),
        "gain_20": gain_at(y_true, y_pred, 0.20),
    }
