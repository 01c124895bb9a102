"""Drift monitoring: PSI, training distributions in the metadata and mkt.drift_report."""

from __future__ import annotations

import json
import math

import duckdb
import numpy as np
import pytest

from duckmkt import monitor
from duckmkt.features import FEATURE_NAMES
from duckmkt.insight import monitor_command


@pytest.fixture(scope="module")
def metadata(trained_model_dir) -> dict:
    return json.loads((trained_model_dir / "metadata.json").read_text())


@pytest.fixture(scope="module")
def training_matrix(small_db, metadata) -> np.ndarray:
    con = duckdb.connect(str(small_db), read_only=True)
    try:
        columns = ", ".join(FEATURE_NAMES)
        rows = con.execute(
            f"select {columns} from mkt.customer_features_at($cutoff::date)", {"cutoff": metadata["train_cutoff"]}
        ).fetchall()
    finally:
        con.close()
    return np.array([[np.nan if value is None else value for value in row] for row in rows], dtype=np.float32)


def test_population_stability_index_known_value():
    psi = monitor.population_stability_index([0.5, 0.5], [0.25, 0.75])

    assert psi == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5))


def test_population_stability_index_identical_is_zero():
    assert monitor.population_stability_index([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0


def test_population_stability_index_empty_bin_is_finite():
    psi = monitor.population_stability_index([0.5, 0.5, 0.0], [0.4, 0.4, 0.2])

    assert math.isfinite(psi)
    assert psi > monitor.PSI_SIGNIFICANT


@pytest.mark.parametrize(
    ("psi", "status"),
    [(0.0, "stable"), (0.0999, "stable"), (0.1, "moderate"), (0.2499, "moderate"), (0.25, "significant"), (None, "not_monitored")],
)
def test_psi_status_thresholds(psi, status):
    assert monitor.psi_status(psi) == status


def test_reference_distributions_saved_per_feature_and_head(metadata):
    reference = metadata["reference_distributions"]

    assert reference["n_rows"] == metadata["n_train_rows"]
    assert set(reference["features"]) == set(FEATURE_NAMES)
    assert set(reference["scores"]) == set(metadata["output_names"])
    for name, entry in {**reference["features"], **reference["scores"]}.items():
        assert 0.0 <= entry["missing_rate"] <= 1.0, name
        if entry["shares"]:
            assert len(entry["shares"]) == len(entry["edges"]) + 1, name
            assert sum(entry["shares"]) == pytest.approx(1.0), name
            assert entry["edges"] == sorted(entry["edges"]), name


def test_feature_drift_of_training_rows_is_zero(metadata, training_matrix):
    reference = metadata["reference_distributions"]["features"]
    for column, name in enumerate(FEATURE_NAMES):
        if name in metadata["unused_features"]:
            continue
        row = monitor.feature_drift(name, reference[name], training_matrix[:, column], metadata["feature_ranges"][name])

        assert row.psi == pytest.approx(0.0, abs=1e-9), name
        assert row.missing_rate_change == pytest.approx(0.0, abs=1e-9), name
        assert row.out_of_range_share == 0.0, name
        assert row.flags == [], name


def test_feature_drift_flags_shifted_values(metadata, training_matrix):
    column = FEATURE_NAMES.index("monetary_value")
    reference = metadata["reference_distributions"]["features"]["monetary_value"]
    shifted = training_matrix[:, column] * 10.0 + 1.0

    row = monitor.feature_drift("monetary_value", reference, shifted, metadata["feature_ranges"]["monetary_value"])

    assert row.status == "significant"
    assert "psi_significant" in row.flags
    assert "out_of_range" in row.flags
    assert monitor.recommend([row]) == "retrain_now"


def test_feature_drift_flags_missing_rate_change(metadata, training_matrix):
    column = FEATURE_NAMES.index("recency_days")
    reference = metadata["reference_distributions"]["features"]["recency_days"]
    values = training_matrix[:, column].copy()
    values[: len(values) // 2] = np.nan

    row = monitor.feature_drift("recency_days", reference, values, metadata["feature_ranges"]["recency_days"])

    assert row.missing_rate_change == pytest.approx(0.5, abs=0.01)
    assert "missing_rate_change" in row.flags


def test_recommend_no_action_when_stable():
    row = monitor.DriftRow(kind="score", name="churn_risk", psi=0.01, status="stable")

    assert monitor.recommend([row]) == "no_action"


def test_monitor_writes_drift_report(small_db_copy, trained_model_dir, metadata, capsys):
    report = monitor_command(small_db_copy, model=str(trained_model_dir))
    output = capsys.readouterr().out

    con = duckdb.connect(str(small_db_copy), read_only=True)
    try:
        rows = con.execute(
            "select kind, name, psi, psi_status, flags, recommendation, model_version from mkt.drift_report order by kind, name"
        ).fetchall()
    finally:
        con.close()
    used = [name for name in FEATURE_NAMES if name not in metadata["unused_features"]]
    features = [row for row in rows if row[0] == "feature"]
    scores = [row for row in rows if row[0] == "score"]

    assert sorted(row[1] for row in features) == sorted(used)
    assert {row[1] for row in scores} >= {"purchase_prob", "expected_spend", "churn_risk"}
    assert {row[5] for row in rows} == {report.recommendation}
    assert {row[6] for row in rows} == {metadata["version"]}
    for kind, name, psi, status, flags, _recommendation, _version in rows:
        assert status == monitor.psi_status(psi), name
        assert (status in ("moderate", "significant")) == (f"psi_{status}" in flags), name
    assert report.localized_recommendation() in output
