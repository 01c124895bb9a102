"""Response models on a user-defined label: the Bank Marketing outcome, without the duration column."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pytest

from duckmkt.database import connect_database
from duckmkt.errors import DataError
from duckmkt.loading import load_files, read_mappings
from duckmkt.registry import load_metadata, verify_model

pytestmark = pytest.mark.train

BANK = Path(__file__).resolve().parents[2] / "shared" / "data" / "bank_marketing" / "bank-full.csv.gz"
LABEL = "select customer_id, (outcome = 'yes')::integer as label from mkt.stg_interactions"
FEATURES = """
    select
        customers.customer_id,
        json_extract_string(customers.attributes, '$.age')::double as age,
        json_extract_string(customers.attributes, '$.balance')::double as balance,
        (json_extract_string(customers.attributes, '$.housing') = 'yes')::integer as has_housing_loan,
        (interactions.channel = 'cellular')::integer as is_cellular,
        month(interactions.occurred_at) as contact_month
    from mkt.stg_customers as customers
    inner join mkt.stg_interactions as interactions using (customer_id)
"""


@pytest.fixture(scope="module")
def bank_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("bank") / "bank.duckdb"
    con = connect_database(path)
    load_files(con, BANK, read_mappings(None, preset="bank_marketing"))
    con.close()
    return path


@pytest.fixture(scope="module")
def response_model(bank_db, tmp_path_factory):
    from duckmkt.training.response import train_response

    con = duckdb.connect(str(bank_db), read_only=True)
    result = train_response(
        con, label=LABEL, features=FEATURES, models_dir=tmp_path_factory.mktemp("models"), name="bank", epochs=3, seed=0
    )
    con.close()
    return result


def test_train_response_saves_one_head_model(response_model):
    metadata = verify_model(response_model.model_dir)

    assert metadata["model_kind"] == "response"
    assert metadata["output_names"] == ["response_prob"]
    assert metadata["feature_names"] == ["age", "balance", "has_housing_loan", "is_cellular", "contact_month"]
    assert "duration" not in metadata["feature_names"]
    # 45,211 rows in 5 stratified folds: one held out, a tenth of the rest for early stopping.
    assert response_model.n_validation_rows == pytest.approx(45_211 / 5, abs=2)
    assert 0.6 < response_model.metrics["response_auc"] <= 1.0
    assert response_model.metrics["response_ece"] < 0.05


def test_score_response_udf(bank_db, response_model):
    from duckmkt.scoring import register

    con = duckdb.connect(str(bank_db), read_only=True)
    register(con, response_model.model_dir)
    rows = con.execute(f"select score_response(f) from ({FEATURES}) f order by customer_id limit 50").fetchall()
    null_row = con.execute(f"select score_response(case when false then f end) from ({FEATURES}) f limit 1").fetchall()
    con.close()

    probabilities = np.array([row[0]["response_prob"] for row in rows])
    assert np.all((probabilities > 0) & (probabilities < 1))
    assert {row[0]["model_version"] for row in rows} == {load_metadata(response_model.model_dir)["version"]}
    assert null_row == [(None,)]


def test_stratified_folds_keep_class_shares():
    from duckmkt.training.response import stratified_folds

    labels = np.array([1.0] * 100 + [0.0] * 900)
    folds = stratified_folds(labels, 5, seed=0)

    for fold in range(5):
        assert labels[folds == fold].sum() == 20
        assert (folds == fold).sum() == 200
    np.testing.assert_array_equal(folds, stratified_folds(labels, 5, seed=0))


def test_train_response_non_numeric_feature_raises(bank_db, tmp_path):
    from duckmkt.training.response import train_response

    con = duckdb.connect(str(bank_db), read_only=True)
    with pytest.raises(DataError, match="not numeric"):
        train_response(
            con,
            label=LABEL,
            features="select customer_id, channel from mkt.stg_interactions",
            models_dir=tmp_path,
            epochs=1,
        )
    con.close()
