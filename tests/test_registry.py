"""Model folders: atomic writing, metadata, sha256 verification and the ONNX round trip."""

from __future__ import annotations

import json
import re
import shutil
from datetime import datetime, timezone

import duckdb
import numpy as np
import pytest

from duckmkt import features
from duckmkt.errors import ModelError
from duckmkt.registry import load_metadata, save_model, verify_model, write_metadata
from duckmkt.training import train
from duckmkt.training.export import run_onnx

EXPECTED_METADATA_KEYS = {
    "format_version",
    "name",
    "version",
    "created_at",
    "feature_names",
    "input_name",
    "output_names",
    "imputation",
    "log_features",
    "scaling",
    "feature_ranges",
    "label_definitions",
    "train_cutoff",
    "validation_cutoff",
    "horizon_days",
    "churn_horizon_days",
    "n_train_rows",
    "n_validation_rows",
    "metrics",
    "baselines",
    "strategy_thresholds",
    "parity_max_abs_diff",
    "onnx_sha256",
    "versions",
}


@pytest.fixture(scope="module")
def trained(small_db, tmp_path_factory):
    models_dir = tmp_path_factory.mktemp("registry_models")
    con = duckdb.connect(str(small_db), read_only=True)
    try:
        result = train(con, models_dir=models_dir, name="customer", epochs=3, seed=0)
        validation_cutoff = result.settings["validation_cutoff"]
        customer_ids = [row[0] for row in con.execute("select distinct customer_id from mkt.int_orders").fetchall()]
    finally:
        con.close()
    return result, validation_cutoff, customer_ids


@pytest.mark.train
def test_model_round_trip(trained, small_db):
    result, validation_cutoff, _ids = trained

    metadata = verify_model(result.model_dir)

    assert metadata["feature_names"] == list(features.FEATURE_NAMES)
    con = duckdb.connect(str(small_db), read_only=True)
    matrix = (
        con.sql(
            f"select {', '.join(metadata['feature_names'])} from mkt.customer_features_at($cutoff::date) order by customer_id",
            params={"cutoff": validation_cutoff},
        )
        .pl()
        .to_numpy()
        .astype(np.float32)
    )
    con.close()
    onnx_bytes = (result.model_dir / "model.onnx").read_bytes()
    outputs = run_onnx(onnx_bytes, matrix)

    assert matrix.shape[0] == metadata["n_validation_rows"]
    assert np.isnan(matrix).any()
    for head in metadata["output_names"]:
        np.testing.assert_array_equal(outputs[head], result.validation_predictions[head], err_msg=head)


@pytest.mark.train
def test_model_metadata_contents(trained):
    result, _cutoff, _ids = trained
    metadata = load_metadata(result.model_dir)

    assert EXPECTED_METADATA_KEYS <= set(metadata)
    assert re.fullmatch(r"\d{8}T\d{6}Z", metadata["version"])
    assert metadata["version"] == result.model_dir.name == result.version
    assert metadata["input_name"] == "features"
    assert metadata["output_names"] == ["purchase_prob", "expected_spend", "churn_risk", "expected_purchases"]
    assert metadata["model_kind"] == "customer"
    assert metadata["train_cutoffs"] == [metadata["train_cutoff"]]
    assert set(metadata["calibration"]) == {"purchase_prob", "churn_risk"}
    assert set(metadata["imputation"]) == set(features.FEATURE_NAMES)
    assert metadata["versions"]["opset"] == 17
    assert metadata["metrics"] == pytest.approx(result.metrics)
    assert metadata["parity_max_abs_diff"] <= 1e-4
    assert metadata["train_cutoff"] == result.settings["train_cutoff"]
    assert set(metadata["strategy_thresholds"]) >= {"churn_risk_high", "purchase_prob_median"}


@pytest.mark.train
def test_model_folder_has_no_customer_data_or_pickle(trained):
    result, _cutoff, customer_ids = trained
    files = sorted(path.name for path in result.model_dir.iterdir())

    assert files == ["metadata.json", "metadata.json.sha256", "model.onnx", "report.json"]
    text = (result.model_dir / "metadata.json").read_text() + (result.model_dir / "report.json").read_text()
    strings = set(re.findall(r'"([^"]*)"', text))
    leaked = [customer for customer in customer_ids if customer in strings]
    assert leaked == []


@pytest.mark.train
def test_verify_model_sha256_mismatch_raises(trained, tmp_path):
    result, _cutoff, _ids = trained
    copy = tmp_path / "copy"
    shutil.copytree(result.model_dir, copy)
    data = bytearray((copy / "model.onnx").read_bytes())
    data[-1] ^= 0x01
    (copy / "model.onnx").write_bytes(bytes(data))

    with pytest.raises(ModelError, match="sha256"):
        verify_model(copy)


def test_verify_model_missing_onnx_raises(tmp_path):
    save_model(tmp_path, "m", b"onnx", {"feature_names": ["x"], "input_name": "features", "output_names": ["y"]}, {})
    model_dir = next((tmp_path / "m").iterdir())
    (model_dir / "model.onnx").unlink()

    with pytest.raises(ModelError, match="not found"):
        verify_model(model_dir)


def test_save_model_versions_unique(tmp_path):
    now = datetime(2026, 12, 4, 20, 30, 0, tzinfo=timezone.utc)
    metadata = {"feature_names": ["x"], "input_name": "features", "output_names": ["y"]}

    first = save_model(tmp_path, "customer", b"first", metadata, {"metrics": {}}, now=now)
    second = save_model(tmp_path, "customer", b"second", metadata, {"metrics": {}}, now=now)

    assert first.name == "20261204T203000Z"
    assert second.name == "20261204T203001Z"
    assert (first / "model.onnx").read_bytes() == b"first"
    assert verify_model(second)["version"] == "20261204T203001Z"
    assert json.loads((second / "report.json").read_text())["version"] == "20261204T203001Z"
    # The temporary folders were renamed away.
    assert sorted(path.name for path in (tmp_path / "customer").iterdir()) == [first.name, second.name]


def test_save_model_invalid_name_raises(tmp_path):
    with pytest.raises(ModelError, match="Invalid model name"):
        save_model(tmp_path, "../escape", b"x", {}, {})


def test_load_metadata_missing_raises(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_metadata(tmp_path)


def test_load_metadata_missing_keys_raises(tmp_path):
    (tmp_path / "metadata.json").write_text(json.dumps({"format_version": 1, "name": "customer"}))

    with pytest.raises(ModelError, match="onnx_sha256"):
        load_metadata(tmp_path)


def test_load_metadata_invalid_json_raises(tmp_path):
    (tmp_path / "metadata.json").write_text("{not json")

    with pytest.raises(ModelError, match="unreadable"):
        load_metadata(tmp_path)


@pytest.fixture
def two_versions(small_db_copy, tmp_path, trained_model_dir):
    """The small database with two recorded versions of the same model (copies of the trained one)."""
    from duckmkt.registry import record_model

    models_dir = tmp_path / "models"
    versions = ["20250101T000000Z", "20250102T000000Z"]
    con = duckdb.connect(str(small_db_copy))
    from duckmkt import sql_views

    sql_views.install(con)
    for version in versions:
        target = models_dir / "customer" / version
        shutil.copytree(trained_model_dir, target)
        metadata = json.loads((target / "metadata.json").read_text())
        metadata["version"] = version
        write_metadata(target, metadata)
        record_model(con, target)
    yield con, models_dir, versions
    con.close()


@pytest.mark.train
def test_promote_and_rollback_statuses(two_versions):
    from duckmkt.registry import list_models, promote, promoted_version, rollback

    con, models_dir, (first, second) = two_versions
    assert promoted_version(con, "customer") is None

    promote(con, "customer", first)
    promote(con, "customer", second)
    statuses = {version: status for _n, version, _c, _k, status, _t, _v in list_models(con)}
    assert statuses == {first: "archived", second: "promoted"}

    row = rollback(con, "customer")
    statuses = {version: status for _n, version, _c, _k, status, _t, _v in list_models(con)}
    assert row["version"] == first
    assert statuses == {first: "promoted", second: "rolled_back"}
    with pytest.raises(ModelError, match="no earlier promoted version"):
        rollback(con, "customer")


@pytest.mark.train
def test_score_customer_uses_promoted_version(two_versions):
    from duckmkt.registry import promote
    from duckmkt.scoring import register

    con, models_dir, (first, second) = two_versions
    promote(con, "customer", first)

    register(con, models_dir=models_dir)
    versions = {row[0] for row in con.execute("select (score_customer(f)).model_version from mkt.customer_features f").fetchall()}
    assert versions == {first}

    # A named version wins over the promoted one.
    register(con, second, models_dir=models_dir)
    versions = {row[0] for row in con.execute("select (score_customer(f)).model_version from mkt.customer_features f").fetchall()}
    assert versions == {second}


@pytest.mark.train
def test_promote_tampered_model_raises(two_versions):
    from duckmkt.registry import promote, promoted_version

    con, models_dir, (first, _second) = two_versions
    onnx_path = models_dir / "customer" / first / "model.onnx"
    data = bytearray(onnx_path.read_bytes())
    data[-1] ^= 0x01
    onnx_path.write_bytes(bytes(data))

    with pytest.raises(ModelError, match="sha256"):
        promote(con, "customer", first)
    assert promoted_version(con, "customer") is None


def test_promote_unrecorded_version_raises(small_db_copy):
    from duckmkt import sql_views
    from duckmkt.registry import promote

    con = duckdb.connect(str(small_db_copy))
    sql_views.install(con)
    with pytest.raises(ModelError, match="not in mkt.models"):
        promote(con, "customer", "20990101T000000Z")
    con.close()


@pytest.mark.train
def test_promote_and_rollback_recompile_sql(two_versions, small_db_copy):
    from duckmkt.compile import compiled_model_info
    from duckmkt.model_quality import models_promote_command, models_rollback_command

    con, models_dir, (first, second) = two_versions
    con.close()

    models_promote_command(small_db_copy, first, models_dir=models_dir)
    models_promote_command(small_db_copy, second, models_dir=models_dir)
    check = duckdb.connect(str(small_db_copy), read_only=True)
    after_promote = compiled_model_info(check)["version"]
    check.close()

    models_rollback_command(small_db_copy)
    check = duckdb.connect(str(small_db_copy), read_only=True)
    after_rollback = compiled_model_info(check)["version"]
    check.close()

    assert after_promote == second
    assert after_rollback == first


@pytest.mark.train
def test_models_show_lists_and_missing_values(two_versions, small_db_copy, capsys):
    from duckmkt.model_quality import models_show_command

    con, _models_dir, (first, _second) = two_versions
    con.execute(
        "update mkt.models set train_cutoffs = ['2011-01-01', '2011-03-02'], horizon_days = null where version = ?", [first]
    )
    con.close()
    capsys.readouterr()

    models_show_command(small_db_copy, first)
    lines = capsys.readouterr().out.splitlines()

    assert any(re.fullmatch(r"train_cutoffs\s+2011-01-01, 2011-03-02\s*", line) for line in lines), lines
    assert any(re.fullmatch(r"horizon_days\s*", line) for line in lines), lines
    assert not any("[" in line for line in lines)
    assert not any("None" in line for line in lines)
