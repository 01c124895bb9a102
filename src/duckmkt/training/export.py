"""Export the Keras model to ONNX with tf2onnx and check it against Keras.

``tf2onnx.convert.from_keras`` does not accept Keras 3 models (tf2onnx 1.17),
so the model is wrapped in a ``tf.function`` with a fixed input signature and
converted with ``from_function``.
"""

from __future__ import annotations

import logging

import keras
import numpy as np
import onnx
import onnxruntime as ort
import onnxruntime.capi.onnxruntime_pybind11_state as ort_state
import tensorflow as tf
import tf2onnx

from duckmkt.errors import ExportError
from duckmkt.i18n import _
from duckmkt.training.model import HEADS, RESPONSE_HEADS, model_heads, predict

logger = logging.getLogger(__name__)

OPSET = 17
INPUT_NAME = "features"
# Largest allowed difference between ONNX Runtime and Keras on any head.
# Probabilities are compared in absolute terms. Amounts (expected_spend in
# currency units, expected_purchases in purchase days) are compared as
# |difference| / max(1, |amount|): float32 carries about 7 significant
# digits, so a spend of 10,000 cannot agree to 1e-4 absolute.
PARITY_TOLERANCE = 1e-4

# ONNX Runtime's load errors derive from Exception directly, with no common base.
_ORT_LOAD_ERRORS = (
    ort_state.Fail,
    ort_state.InvalidArgument,
    ort_state.InvalidGraph,
    ort_state.InvalidProtobuf,
    ort_state.NotImplemented,
)


def export_onnx(model: keras.Model, n_features: int, *, opset: int = OPSET) -> bytes:
    """Convert ``model`` to a serialized ONNX model with input ``features`` and one output per head."""
    heads = model_heads(model)

    @tf.function(input_signature=[tf.TensorSpec([None, n_features], tf.float32, name=INPUT_NAME)])
    def serve(features):
        outputs = model(features, training=False)
        # tf.identity names the graph outputs, which become the ONNX output names.
        return {head: tf.identity(outputs[head], name=head) for head in heads}

    try:
        model_proto, _storage = tf2onnx.convert.from_function(
            serve,
            input_signature=serve.input_signature,
            opset=opset,
            output_path=None,
        )
    except Exception as error:  # tf2onnx raises bare Exceptions and ValueErrors alike
        raise ExportError(_("Converting the model to ONNX with tf2onnx failed: {error}").format(error=error)) from error

    _rename_outputs(model_proto, heads)
    return model_proto.SerializeToString()


def _rename_outputs(model_proto: onnx.ModelProto, heads: tuple[str, ...]) -> None:
    """Rename the graph outputs to the head names, because tf2onnx appends ':0' to TensorFlow tensor names."""
    renames = {}
    for output in model_proto.graph.output:
        head = output.name.split(":")[0]
        if head in heads and output.name != head:
            renames[output.name] = head
    for node in model_proto.graph.node:
        node.output[:] = [renames.get(name, name) for name in node.output]
        node.input[:] = [renames.get(name, name) for name in node.input]
    for output in model_proto.graph.output:
        output.name = renames.get(output.name, output.name)

    names = [output.name for output in model_proto.graph.output]
    if sorted(names) != sorted(heads) or [i.name for i in model_proto.graph.input] != [INPUT_NAME]:
        raise ExportError(
            _("The ONNX model has inputs {inputs} and outputs {outputs}; expected input {input} and outputs {heads}.").format(
                inputs=[i.name for i in model_proto.graph.input], outputs=names, input=INPUT_NAME, heads=list(heads)
            )
        )


def run_onnx(onnx_bytes: bytes, matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Run the serialized model with ONNX Runtime on a float32 matrix; return each output as [N, 1]."""
    try:
        session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    except _ORT_LOAD_ERRORS as error:
        # tf2onnx logs ops it cannot convert and still returns a model, which
        # ONNX Runtime then rejects here.
        raise ExportError(_("ONNX Runtime cannot load the exported model: {error}").format(error=error)) from error
    names = [output.name for output in session.get_outputs()]
    heads = [head for head in HEADS + RESPONSE_HEADS if head in names]
    outputs = session.run(heads, {INPUT_NAME: np.ascontiguousarray(matrix, dtype=np.float32)})
    return dict(zip(heads, outputs))


def parity_rows(matrix: np.ndarray, median: np.ndarray) -> np.ndarray:
    """Return ``matrix`` plus rows that exercise the imputation: all NaN, +inf, -inf and one NaN per column."""
    n_features = matrix.shape[1]
    extra = [
        np.full(n_features, np.nan),
        np.full(n_features, np.inf),
        np.full(n_features, -np.inf),
    ]
    for column in range(n_features):
        row = median.astype(np.float64).copy()
        row[column] = np.nan
        extra.append(row)
    return np.vstack([matrix, np.array(extra)]).astype(np.float32)


def parity_difference(head: str, onnx_values: np.ndarray, keras_values: np.ndarray) -> np.ndarray:
    """Return the per-row difference that PARITY_TOLERANCE bounds for ``head``."""
    reference = keras_values.astype(np.float64)
    difference = np.abs(onnx_values.astype(np.float64) - reference)
    if head in ("expected_spend", "expected_purchases"):
        difference = difference / np.maximum(1.0, np.abs(reference))
    return difference


def check_parity(
    onnx_bytes: bytes, model: keras.Model, matrix: np.ndarray, *, tolerance: float = PARITY_TOLERANCE
) -> float:
    """Compare ONNX Runtime with Keras on ``matrix``; return the largest difference over the heads.

    The difference is absolute for the probabilities and relative above 1
    for spend (see PARITY_TOLERANCE). Raises ExportError naming the head when a difference exceeds ``tolerance``
    or an output is not a float32 [N, 1] array.
    """
    onnx_outputs = run_onnx(onnx_bytes, matrix)
    keras_outputs = predict(model, matrix)

    worst = 0.0
    for head in model_heads(model):
        onnx_values = onnx_outputs[head]
        if onnx_values.dtype != np.float32 or onnx_values.shape != (matrix.shape[0], 1):
            raise ExportError(
                _("The ONNX output {head} has dtype {dtype} and shape {shape}; expected float32 and ({rows}, 1).").format(
                    head=head, dtype=onnx_values.dtype, shape=onnx_values.shape, rows=matrix.shape[0]
                )
            )
        difference = parity_difference(head, onnx_values, keras_outputs[head])
        # NaN compares false with everything, so it is caught explicitly.
        max_difference = float("inf") if not np.all(np.isfinite(difference)) else float(difference.max())
        logger.debug("Parity of %s: max abs difference %.3g", head, max_difference)
        if max_difference > tolerance:
            raise ExportError(
                _(
                    "The ONNX output {head} differs from Keras by up to {difference:.3g}, more than the tolerance {tolerance:g}; "
                    "the export is broken, so report it with the tf2onnx and TensorFlow versions."
                ).format(head=head, difference=max_difference, tolerance=tolerance)
            )
        worst = max(worst, max_difference)
    return worst
