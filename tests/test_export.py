"""ONNX export of a small real model: names, shapes, parity with Keras, tamper detection."""

from __future__ import annotations

import duckdb
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from duckmkt.errors import ExportError
from duckmkt.training import CustomerModelTrainer
from duckmkt.training.export import HEADS, INPUT_NAME, PARITY_TOLERANCE, check_parity, export_onnx, parity_rows, run_onnx
from duckmkt.training.model import predict

pytestmark = pytest.mark.train


@pytest.fixture(scope="module")
def exported(small_db):
    con = duckdb.connect(str(small_db), read_only=True)
    try:
        trainer = CustomerModelTrainer(epochs=3, seed=0).fit(con)
    finally:
        con.close()
    onnx_bytes = export_onnx(trainer.model_, len(trainer.feature_names_))
    return trainer, onnx_bytes


def test_export_onnx_names_and_shapes(exported):
    trainer, onnx_bytes = exported
    model = onnx.load_from_string(onnx_bytes)

    assert [value.name for value in model.graph.input] == [INPUT_NAME]
    assert sorted(value.name for value in model.graph.output) == sorted(HEADS)
    assert max(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")) == 17

    outputs = run_onnx(onnx_bytes, trainer.validation_rows_.matrix[:7])
    for head in HEADS:
        assert outputs[head].dtype == np.float32, head
        assert outputs[head].shape == (7, 1), head


def test_check_parity_passes_with_nan_rows(exported):
    trainer, onnx_bytes = exported
    rows = parity_rows(trainer.validation_rows_.matrix, trainer.preprocessing_.median)
    assert np.isnan(rows).any()
    assert np.isinf(rows).any()

    difference = check_parity(onnx_bytes, trainer.model_, rows)

    assert 0.0 <= difference <= PARITY_TOLERANCE


def test_export_nan_row_equals_median_row(exported):
    trainer, onnx_bytes = exported
    n_features = len(trainer.feature_names_)
    median_row = trainer.preprocessing_.median.reshape(1, -1)
    missing_rows = np.vstack([np.full((1, n_features), np.nan), np.full((1, n_features), np.inf)]).astype(np.float32)

    expected = run_onnx(onnx_bytes, median_row)
    actual = run_onnx(onnx_bytes, missing_rows)

    for head in HEADS:
        np.testing.assert_allclose(actual[head], np.repeat(expected[head], 2, axis=0), rtol=1e-6, err_msg=head)


def test_export_preprocessing_matches_numpy(exported):
    trainer, _onnx_bytes = exported
    layer = trainer.network_.get_layer("preprocessing")
    matrix = parity_rows(trainer.validation_rows_.matrix, trainer.preprocessing_.median)

    graph_values = np.asarray(layer(matrix))

    np.testing.assert_allclose(graph_values, trainer.preprocessing_.transform(matrix), rtol=1e-5, atol=1e-5)


def test_check_parity_tampered_weights_raise(exported):
    trainer, onnx_bytes = exported
    model = onnx.load_from_string(onnx_bytes)
    # Shift the largest weight matrix (a hidden layer's kernel): every head changes.
    initializer = max(model.graph.initializer, key=lambda tensor: np.prod(tensor.dims))
    weights = numpy_helper.to_array(initializer)
    initializer.CopyFrom(numpy_helper.from_array(weights + np.float32(0.05), initializer.name))
    tampered = model.SerializeToString()

    with pytest.raises(ExportError, match="differs from Keras") as raised:
        check_parity(tampered, trainer.model_, trainer.validation_rows_.matrix)

    assert any(head in str(raised.value) for head in HEADS)


def test_check_parity_other_model_raises(exported, small_db):
    trainer, onnx_bytes = exported
    con = duckdb.connect(str(small_db), read_only=True)
    other = CustomerModelTrainer(epochs=1, seed=1).fit(con)
    con.close()
    keras_outputs = predict(other.model_, trainer.validation_rows_.matrix)
    assert keras_outputs["purchase_prob"].shape[0] == trainer.validation_rows_.n_rows

    with pytest.raises(ExportError):
        check_parity(onnx_bytes, other.model_, trainer.validation_rows_.matrix)


def test_run_onnx_invalid_model_raises():
    with pytest.raises(ExportError, match="cannot load"):
        run_onnx(b"not an onnx model", np.zeros((1, 3), dtype=np.float32))


def test_export_includes_platt_calibration(exported):
    from duckmkt.training.calibration import apply_platt

    trainer, onnx_bytes = exported
    matrix = trainer.validation_rows_.matrix
    raw = predict(trainer.network_, matrix)
    exported_outputs = run_onnx(onnx_bytes, matrix)

    for head, (slope, intercept) in trainer.calibration_.items():
        expected = apply_platt(raw[head], slope, intercept).reshape(-1, 1)
        np.testing.assert_allclose(exported_outputs[head], expected, atol=1e-5, err_msg=head)
    np.testing.assert_allclose(exported_outputs["expected_spend"], raw["expected_spend"], rtol=1e-5)
