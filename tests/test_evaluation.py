"""Evaluation metrics and ``evaluate`` beside the baselines, on a small real model."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from duckmkt.evaluation.evaluate import METHODS, evaluate, rfm_score
from duckmkt.evaluation.metrics import (
    expected_calibration_error,
    gain_at,
    lift_at,
    reliability_table,
    root_mean_squared_error,
)
from duckmkt.registry import load_metadata


def test_gain_and_lift_known_values():
    labels = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 1])
    scores = np.arange(10, 0, -1, dtype=float)  # row 0 scores highest

    assert gain_at(labels, scores, 0.10) == pytest.approx(1 / 3)
    assert gain_at(labels, scores, 0.30) == pytest.approx(2 / 3)
    assert lift_at(labels, scores, 0.10) == pytest.approx((1 / 3) / 0.10)
    assert gain_at(np.zeros(4), scores[:4], 0.5) != gain_at(np.zeros(4), scores[:4], 0.5)  # NaN without positives


def test_reliability_table_and_ece_known_values():
    labels = np.array([0, 0, 1, 1])
    probabilities = np.array([0.05, 0.05, 0.95, 0.65])

    table = reliability_table(labels, probabilities, n_bins=10)

    assert [(row["low"], row["n_rows"]) for row in table] == [(0.0, 2), (0.6, 1), (0.9, 1)]
    assert table[1]["observed_rate"] == 1.0
    expected = (2 * 0.05 + 1 * 0.35 + 1 * 0.05) / 4
    assert expected_calibration_error(labels, probabilities) == pytest.approx(expected)


def test_rmse_known_value():
    assert root_mean_squared_error(np.array([0.0, 4.0]), np.array([3.0, 0.0])) == pytest.approx(np.sqrt(12.5))


def test_rfm_score_orders_customers():
    # recency_days, frequency, monetary_value: row 0 is best on all three.
    rfm = np.array([[1.0, 10.0, 500.0], [50.0, 2.0, 50.0], [300.0, 1.0, 10.0], [20.0, 5.0, 100.0], [100.0, 1.0, 20.0]])

    score = rfm_score(rfm)

    assert score[0] == 15
    assert score[2] == min(score)
    assert np.all((score >= 3) & (score <= 15))


@pytest.mark.train
def test_evaluate_compares_methods_on_same_rows(small_db, trained_model_dir):
    metadata = load_metadata(trained_model_dir)
    con = duckdb.connect(str(small_db), read_only=True)
    result = evaluate(con, trained_model_dir, cutoff=metadata["validation_cutoff"])
    con.close()

    assert result.n_rows == metadata["n_validation_rows"]
    assert result.horizon_scale == 1.0
    assert set(result.metrics) == set(METHODS)
    for method in METHODS:
        assert 0.5 < result.metrics[method]["purchase"]["auc"] <= 1.0, method
    for method in ("duckmkt", "bgnbd", "rfm_rules"):
        assert np.isfinite(result.metrics[method]["spend"]["mae"]), method
        assert np.isfinite(result.metrics[method]["purchases"]["mae"]), method
    assert np.isfinite(result.metrics["duckmkt"]["purchase"]["ece"])
    assert result.metrics["duckmkt"]["purchase"]["lift_10"] > 1.0
    assert result.best_method("purchase", "auc") in METHODS
    assert set(result.btyd_params) == {"r", "alpha", "a", "b", "p", "q", "gamma"}


@pytest.mark.train
def test_evaluate_longer_horizon_scales_amounts(small_db, trained_model_dir):
    metadata = load_metadata(trained_model_dir)
    con = duckdb.connect(str(small_db), read_only=True)
    result = evaluate(con, trained_model_dir, cutoff=metadata["validation_cutoff"], horizon_days=2 * metadata["horizon_days"])
    con.close()

    assert result.horizon_scale == 2.0
    # The purchase probability is for the model's horizon: ranking metrics only.
    assert np.isnan(result.metrics["duckmkt"]["purchase"]["log_loss"])
    assert "churn" not in result.metrics["duckmkt"]
