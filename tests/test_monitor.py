"""Drift monitoring: PSI, reference distributions in the metadata and mkt.drift_report."""

from __future__ import annotations

import json
import math
from datetime import date, timedelta

import duckdb
import numpy as np
import pytest

from duckmkt import monitor
from duckmkt.database import connect_database
from duckmkt.features import CLOCK_FEATURES, FEATURE_NAMES, FEATURES_BY_NAME
from duckmkt.insight import monitor_command
from duckmkt.loading import load_orders
from duckmkt.scoring import Scorer

# The small subset is split here for a model trained before the later lines are loaded.
SPLIT_AT = "2011-10-11"


@pytest.fixture(scope="module")
def metadata(trained_model_dir) -> dict:
    return json.loads((trained_model_dir / "metadata.json").read_text())


@pytest.fixture(scope="module")
def scorer(trained_model_dir) -> Scorer:
    return Scorer.load(trained_model_dir)


@pytest.fixture(scope="module")
def aged_model(tmp_path_factory, small_orders_csv) -> tuple:
    """A model trained on the small subset's lines before SPLIT_AT, and its database after the later lines are loaded."""
    from duckmkt.training import train

    folder = tmp_path_factory.mktemp("aged")
    parts = {"early": "<", "late": ">="}
    for part, comparison in parts.items():
        duckdb.connect().execute(
            f"""
            copy (
                select * from read_csv('{small_orders_csv}', all_varchar = true, header = true)
                where InvoiceDate::timestamp {comparison} '{SPLIT_AT}'::timestamp
            ) to '{folder / part}.csv' (format csv, header true)
            """
        )
    db_path = folder / "aged.duckdb"
    con = connect_database(db_path)
    try:
        load_orders(con, folder / "early.csv")
        result = train(con, models_dir=folder / "models", name="customer", epochs=8, seed=0)
        load_orders(con, folder / "late.csv")
    finally:
        con.close()
    return db_path, result.model_dir


@pytest.fixture(scope="module")
def reference_matrix(small_db, metadata) -> np.ndarray:
    con = duckdb.connect(str(small_db), read_only=True)
    try:
        columns = ", ".join(FEATURE_NAMES)
        rows = con.execute(
            f"select {columns} from mkt.customer_features_at($cutoff::date)",
            {"cutoff": metadata["reference_distributions"]["cutoff"]},
        ).fetchall()
    finally:
        con.close()
    return np.array([[np.nan if value is None else value for value in row] for row in rows], dtype=np.float32)


def drift_of(db_path, scorer) -> monitor.DriftReport:
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return monitor.drift_report(con, scorer)
    finally:
        con.close()


def row_named(report: monitor.DriftReport, name: str) -> monitor.DriftRow:
    return next(row for row in report.rows if row.name == name)


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


def test_reference_distributions_saved_per_feature_and_head(metadata, reference_matrix):
    reference = metadata["reference_distributions"]

    assert reference["n_rows"] == reference_matrix.shape[0]
    assert set(reference["features"]) == set(FEATURE_NAMES)
    assert set(reference["scores"]) == set(metadata["output_names"])
    for name, entry in {**reference["features"], **reference["scores"]}.items():
        assert 0.0 <= entry["missing_rate"] <= 1.0, name
        if entry["shares"]:
            assert len(entry["shares"]) == len(entry["edges"]) + 1, name
            assert sum(entry["shares"]) == pytest.approx(1.0), name
            assert entry["edges"] == sorted(entry["edges"]), name
            assert entry["min"] <= entry["max"], name


def test_reference_cutoff_is_day_after_latest_sale(small_db, metadata):
    con = duckdb.connect(str(small_db), read_only=True)
    try:
        features_cutoff = con.execute("select max(cutoff_date) from mkt.customer_features").fetchall()[0][0]
    finally:
        con.close()

    assert metadata["reference_distributions"]["cutoff"] == features_cutoff.isoformat()
    assert metadata["reference_distributions"]["cutoff"] > metadata["validation_cutoff"]


def test_feature_drift_of_reference_rows_is_zero(metadata, reference_matrix):
    reference = metadata["reference_distributions"]
    cutoff = date.fromisoformat(reference["cutoff"])
    for column, name in enumerate(FEATURE_NAMES):
        if name in metadata["unused_features"]:
            continue
        entry = reference["features"][name]
        value_range = monitor.reference_range(name, entry, metadata["feature_ranges"][name], cutoff, cutoff)
        row = monitor.feature_drift(name, entry, reference_matrix[:, column], value_range)

        assert row.psi == pytest.approx(0.0, abs=1e-9), name
        assert row.missing_rate_change == pytest.approx(0.0, abs=1e-9), name
        assert row.out_of_range_share == 0.0, name
        assert row.flags == [], name


def test_feature_drift_flags_shifted_values(metadata, reference_matrix):
    column = FEATURE_NAMES.index("monetary_value")
    reference = metadata["reference_distributions"]["features"]["monetary_value"]
    shifted = reference_matrix[:, column] * 10.0 + 1.0

    row = monitor.feature_drift("monetary_value", reference, shifted, reference)

    assert row.status == "significant"
    assert "psi_significant" in row.flags
    assert "out_of_range" in row.flags
    assert monitor.recommend([row]) == "retrain_now"


def test_feature_drift_flags_missing_rate_change(metadata, reference_matrix):
    column = FEATURE_NAMES.index("recency_days")
    reference = metadata["reference_distributions"]["features"]["recency_days"]
    values = reference_matrix[:, column].copy()
    values[: len(values) // 2] = np.nan

    row = monitor.feature_drift("recency_days", reference, values, reference)

    assert row.missing_rate_change == pytest.approx(0.5, abs=0.01)
    assert "missing_rate_change" in row.flags


def test_feature_drift_clock_feature_is_calendar(metadata, reference_matrix):
    column = FEATURE_NAMES.index("tenure_days")
    reference = metadata["reference_distributions"]["features"]["tenure_days"]
    cutoff = date.fromisoformat(metadata["reference_distributions"]["cutoff"])
    later = cutoff + timedelta(days=200)
    value_range = monitor.reference_range("tenure_days", reference, None, cutoff, later)

    row = monitor.feature_drift("tenure_days", reference, reference_matrix[:, column] + 200.0, value_range, clock=True)

    assert row.psi > monitor.PSI_SIGNIFICANT
    assert row.status == "calendar"
    assert row.out_of_range_share == 0.0
    assert row.flags == []
    assert monitor.recommend([row]) == "no_action"


def test_feature_drift_clock_feature_flags_range(metadata, reference_matrix):
    column = FEATURE_NAMES.index("tenure_days")
    reference = metadata["reference_distributions"]["features"]["tenure_days"]
    cutoff = date.fromisoformat(metadata["reference_distributions"]["cutoff"])
    later = cutoff + timedelta(days=30)
    value_range = monitor.reference_range("tenure_days", reference, None, cutoff, later)

    # Two years more tenure than 30 days explain, as a load of older history would give.
    row = monitor.feature_drift("tenure_days", reference, reference_matrix[:, column] + 730.0, value_range, clock=True)

    assert row.status == "calendar"
    assert "out_of_range" in row.flags
    assert monitor.recommend([row]) == "retrain_soon"


def test_clock_features_count_time_since_fixed_date():
    assert CLOCK_FEATURES == {"tenure_days", "age_years", "days_since_signup"}
    for name in CLOCK_FEATURES:
        assert FEATURES_BY_NAME[name].calendar == "grows", name


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
        cutoffs = con.execute("select distinct reference_cutoff, current_cutoff from mkt.drift_report").fetchall()
        unlabelled = con.execute(
            """
            select distinct psi_status from mkt.drift_report
            where psi_status not in (select code from mkt.code_labels where kind = 'drift_status')
            """
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
    assert cutoffs == [(report.reference_cutoff, report.current_cutoff)]
    assert unlabelled == []
    assert "calendar" in {row[3] for row in rows}
    for kind, name, psi, status, flags, _recommendation, _version in rows:
        expected = "calendar" if name in CLOCK_FEATURES else monitor.psi_status(psi)
        assert status == expected, name
        assert (status in ("moderate", "significant")) == (f"psi_{status}" in flags), name
    assert report.localized_recommendation() in output


def test_monitor_default_flow_is_stable(small_db, scorer):
    # Trained and monitored on the same data, as right after 'duckmkt train'.
    report = drift_of(small_db, scorer)

    assert report.recommendation == "no_action"
    for row in report.rows:
        assert row.flags == [], row.name
        assert row.psi == pytest.approx(0.0, abs=1e-9), row.name
    assert report.reference_cutoff == report.current_cutoff
    assert report.training_cutoff < report.current_cutoff


def test_monitor_calendar_growth_not_flagged(aged_model):
    db_path, model_dir = aged_model
    report = drift_of(db_path, Scorer.load(model_dir))
    tenure = row_named(report, "tenure_days")

    assert report.recommendation != "retrain_now"
    # Tenure has grown past what a PSI band would call significant ...
    assert tenure.psi >= monitor.PSI_SIGNIFICANT
    assert tenure.status == "calendar"
    # ... and so have the largest tenure and recency, within the days passed.
    for row in report.rows:
        if row.kind == "feature" and FEATURES_BY_NAME[row.name].calendar is not None:
            assert "out_of_range" not in row.flags, row.name
    assert report.reference_cutoff == date.fromisoformat(SPLIT_AT)
    assert report.current_cutoff > report.reference_cutoff


def test_monitor_flags_doubled_spend(small_db_copy, scorer):
    con = duckdb.connect(str(small_db_copy))
    try:
        con.execute(
            """
            update raw.order_lines
            set unit_price = (try_cast(unit_price as double) * 2)::varchar
            where hash(trim(customer_id)) % 2 = 0
            """
        )
    finally:
        con.close()

    report = drift_of(small_db_copy, scorer)
    flagged = {row.name for row in report.flagged()}

    assert "avg_unit_price" in flagged
    assert "avg_order_value" in flagged
    assert report.recommendation == "retrain_now"


def test_monitor_flags_shifted_recency(small_db_copy, scorer):
    # Half of the customers lose their orders of the last 90 days, so their
    # latest order moves back.
    con = duckdb.connect(str(small_db_copy))
    try:
        con.execute(
            """
            delete from raw.order_lines
            where hash(trim(customer_id)) % 2 = 0
                and try_cast(ordered_at as timestamp)
                    >= (select max(try_cast(ordered_at as timestamp)) from raw.order_lines) - interval 90 days
            """
        )
    finally:
        con.close()

    report = drift_of(small_db_copy, scorer)
    recency = row_named(report, "recency_days")

    assert recency.status in ("moderate", "significant")
    assert f"psi_{recency.status}" in recency.flags
    assert "n_orders_90d" in {row.name for row in report.flagged()}
    assert report.recommendation != "no_action"


def test_drift_report_reads_training_reference(small_db, trained_model_dir):
    # A model whose reference is its training rows has no cutoff or range in
    # the entries, so the training cutoff and the training ranges stand in.
    scorer = Scorer.load(trained_model_dir)
    reference = scorer.metadata["reference_distributions"]
    del reference["cutoff"]
    for entry in reference["features"].values():
        del entry["min"], entry["max"]

    report = drift_of(small_db, scorer)
    tenure = row_named(report, "tenure_days")

    assert report.reference_cutoff == date.fromisoformat(scorer.metadata["train_cutoff"])
    assert tenure.status == "calendar"
    # The training range is widened by the days since the training cutoff.
    # Without that, most customers would be older than any training row.
    assert tenure.out_of_range_share < monitor.OUT_OF_RANGE_LIMIT
    assert "out_of_range" not in tenure.flags
