"""Data-quality flags in score_customer: imputed and out-of-range features."""

from __future__ import annotations

import json
from datetime import date, timedelta

import duckdb
import pytest

from duckmkt.features import FEATURE_NAMES, FEATURES_BY_NAME
from duckmkt.scoring import register

GROWING_FEATURES = [name for name in FEATURE_NAMES if FEATURES_BY_NAME[name].calendar == "grows"]


@pytest.fixture
def scoring_con(small_db, trained_model_dir):
    con = duckdb.connect(str(small_db), read_only=True)
    register(con, trained_model_dir)
    yield con
    con.close()


@pytest.fixture(scope="module")
def metadata(trained_model_dir) -> dict:
    return json.loads((trained_model_dir / "metadata.json").read_text())


def score_struct(con, values: dict[str, str]) -> dict:
    fields = ", ".join(f"'{name}': {values[name]}" for name in FEATURE_NAMES)
    return con.execute(f"select score_customer({{{fields}}})").fetchall()[0][0]


def struct_sql(values: dict[str, str], cutoff: date | None = None) -> str:
    fields = [f"'{name}': {values[name]}" for name in FEATURE_NAMES]
    if cutoff is not None:
        fields.append(f"'cutoff_date': DATE '{cutoff.isoformat()}'")
    return "{" + ", ".join(fields) + "}"


def days_after_training(metadata, days: int) -> date:
    return date.fromisoformat(metadata["train_cutoff"]) + timedelta(days=days)


def median_values(metadata) -> dict[str, str]:
    return {name: f"{metadata['imputation'][name]}::double" for name in FEATURE_NAMES}


def test_score_customer_keeps_field_order(scoring_con, metadata):
    score = score_struct(scoring_con, median_values(metadata))

    assert list(score)[:5] == ["purchase_prob", "expected_spend", "churn_risk", "strategy", "model_version"]
    assert "imputed_features" in score
    assert "out_of_range_features" in score


def test_score_customer_median_row_has_no_flags(scoring_con, metadata):
    score = score_struct(scoring_con, median_values(metadata))

    assert score["imputed_features"] == []
    assert score["out_of_range_features"] == []


def test_score_customer_flags_imputed_features(scoring_con, metadata):
    values = median_values(metadata)
    values["recency_days"] = "null::double"
    values["frequency"] = "'nan'::double"
    unused = metadata["unused_features"][0]
    values[unused] = "null::double"

    score = score_struct(scoring_con, values)

    assert score["imputed_features"] == ["recency_days", "frequency"]
    assert score["out_of_range_features"] == []


def test_score_customer_flags_out_of_range_features(scoring_con, metadata):
    values = median_values(metadata)
    values["monetary_value"] = f"{metadata['feature_ranges']['monetary_value']['max'] * 2 + 1}::double"
    values["return_rate"] = "-1.0::double"
    values["recency_days"] = f"{metadata['feature_ranges']['recency_days']['max']}::double"

    score = score_struct(scoring_con, values)

    assert score["out_of_range_features"] == ["monetary_value", "return_rate"]
    assert score["imputed_features"] == []


def test_score_customer_widens_calendar_ranges(scoring_con, metadata):
    ranges = metadata["feature_ranges"]
    values = median_values(metadata)
    # Within the 100 days that passed since the training cutoff.
    values["tenure_days"] = f"{ranges['tenure_days']['max'] + 50}::double"
    values["recency_days"] = f"{ranges['recency_days']['max'] + 50}::double"
    values["spend_180d"] = "0::double"

    later = scoring_con.execute(f"select score_customer({struct_sql(values, days_after_training(metadata, 100))})").fetchall()[0][0]
    without_cutoff = scoring_con.execute(f"select score_customer({struct_sql(values)})").fetchall()[0][0]

    assert later["out_of_range_features"] == []
    assert {"tenure_days", "recency_days"} <= set(without_cutoff["out_of_range_features"])


def test_score_customer_flags_tenure_beyond_calendar(scoring_con, metadata):
    values = median_values(metadata)
    values["tenure_days"] = f"{metadata['feature_ranges']['tenure_days']['max'] + 150}::double"

    score = scoring_con.execute(f"select score_customer({struct_sql(values, days_after_training(metadata, 100))})").fetchall()[0][0]

    assert score["out_of_range_features"] == ["tenure_days"]


def test_score_customer_bounds_per_row_cutoff(scoring_con, metadata):
    values = median_values(metadata)
    values["tenure_days"] = f"{metadata['feature_ranges']['tenure_days']['max'] + 50}::double"
    at_training = struct_sql(values, days_after_training(metadata, 0))
    later = struct_sql(values, days_after_training(metadata, 100))

    # Both rows reach the UDF in one batch, which then has two cutoffs.
    rows = scoring_con.execute(
        f"select row_number, score_customer(f).out_of_range_features from (values (1, {at_training}), (2, {later})) as t(row_number, f) order by row_number"
    ).fetchall()

    assert rows == [(1, ["tenure_days"]), (2, [])]


def test_score_customer_todays_rows_within_calendar_ranges(scoring_con, metadata):
    # Tenure and the days since an event may exceed the training maximum by
    # the days since the training cutoff. A value below the minimum is still
    # flagged.
    for name in GROWING_FEATURES:
        if name in metadata["unused_features"]:
            continue
        flagged = scoring_con.execute(
            f"""
            select count(*)
            from (select score_customer(f) as s, f."{name}" as value from mkt.customer_features as f)
            where list_contains(s.out_of_range_features, $name) and value >= $minimum
            """,
            {"name": name, "minimum": metadata["feature_ranges"][name]["min"]},
        ).fetchall()[0][0]

        assert flagged == 0, name


def test_score_customer_without_cutoff_uses_training_ranges(scoring_con):
    query = """
        select count(*) filter (where list_contains(s.out_of_range_features, 'tenure_days')), count(*)
        from (select score_customer(f) as s from {relation} as f)
    """
    with_cutoff = scoring_con.execute(query.format(relation="mkt.customer_features")).fetchall()[0]
    without_cutoff = scoring_con.execute(
        query.format(relation="(select * exclude (cutoff_date) from mkt.customer_features)")
    ).fetchall()[0]

    assert with_cutoff[0] < with_cutoff[1] * 0.05
    assert without_cutoff[0] > without_cutoff[1] / 2


def test_score_customer_flags_every_row(scoring_con):
    counts = scoring_con.execute(
        """
        select count(*), count(s.imputed_features), count(s.out_of_range_features)
        from (select score_customer(f) as s from mkt.customer_features f)
        """
    ).fetchall()[0]

    assert counts[0] > 0
    assert counts == (counts[0], counts[0], counts[0])


@pytest.mark.parametrize("dictionary", [False, True])
@pytest.mark.parametrize("n_columns", [29, 52, 60])
def test_names_per_row_matches_cell_by_cell_listing(n_columns, dictionary):
    import numpy as np
    import pyarrow as pa

    from duckmkt.score_flags import _names_per_row

    rng = np.random.default_rng(n_columns)
    names = [f"f{column}" for column in range(n_columns)]
    mask = rng.random((3000, n_columns)) < 0.05
    # The last column and an empty row check the edges of the flattened scan.
    mask[::7, -1] = True
    mask[5] = False

    listed = _names_per_row(mask, pa.array(names), dictionary=dictionary).to_pylist()

    assert listed == [[names[column] for column in np.flatnonzero(row)] for row in mask]
    assert listed[5] == []


def test_names_per_row_without_flags_gives_empty_lists():
    import numpy as np

    from duckmkt.score_flags import _names_per_row

    import pyarrow as pa

    listed = _names_per_row(np.zeros((4, 3), dtype=bool), pa.array(["a", "b", "c"]), dictionary=False)

    assert listed.to_pylist() == [[], [], [], []]
    assert listed.type.value_type == "string"
