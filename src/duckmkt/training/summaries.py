"""Aggregates saved with a model for explanations and drift monitoring.

``build_summaries`` returns three metadata entries, all aggregates and
never the rows themselves:

- ``background``: k-means centroids (clusters of at least 10 rows) that
  ``explain_customer`` attributes against;
- ``global_importance``: mean absolute Shapley attribution per head and
  feature on a sample of training rows;
- ``reference_distributions``: decile edges, bin shares, missing rates and
  ranges of every feature and head over the customers of
  ``mkt.customer_features`` at training time, for ``duckmkt monitor``.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from duckmkt import explain, monitor
from duckmkt.training import export


def onnx_predictor(onnx_bytes: bytes) -> explain.Predictor:
    """Return a function that runs the serialized model on a float32 matrix, one flat array per head."""
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    heads = [output.name for output in session.get_outputs()]

    def predict(matrix: np.ndarray) -> dict[str, np.ndarray]:
        outputs = session.run(heads, {export.INPUT_NAME: np.ascontiguousarray(matrix, dtype=np.float32)})
        return {head: output.reshape(-1) for head, output in zip(heads, outputs)}

    return predict


def build_summaries(trainer, onnx_bytes: bytes) -> dict[str, object]:
    """Return the ``background``, ``global_importance`` and ``reference_distributions`` entries of a fitted trainer."""
    preprocessing = trainer.preprocessing_
    matrix = trainer.train_rows_.matrix
    feature_names = list(trainer.feature_names_)
    predict = onnx_predictor(onnx_bytes)

    background = explain.fit_background(
        preprocessing.transform(matrix),
        mean=preprocessing.mean,
        std=preprocessing.std,
        log_mask=preprocessing.log_mask,
        used=preprocessing.used,
        seed=trainer.seed,
    )
    explainer = explain.ShapleyExplainer(predict, background, np.flatnonzero(preprocessing.used), seed=trainer.seed)
    # Drift is measured against the customers the model is first used on, at
    # the day after the latest sale. The training rows lie 240 days earlier
    # with the default windows, and tenure and recency differ there even
    # when no customer changes (details in duckmkt.monitor).
    scoring = trainer.scoring_matrix_
    return {
        "background": background.as_metadata(feature_names, matrix.shape[0]),
        "global_importance": explain.importance_metadata(explainer, matrix, feature_names, seed=trainer.seed),
        "reference_distributions": monitor.reference_distributions(
            scoring, feature_names, predict(scoring), trainer.scoring_cutoff_
        ),
    }
