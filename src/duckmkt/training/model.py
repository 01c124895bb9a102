"""The Keras networks, with their preprocessing inside the graph.

The customer model has four heads (``HEADS``): purchase_prob, expected_spend,
churn_risk and expected_purchases. A response model, trained on a label the
user defines, has one head (``RESPONSE_HEADS``): response_prob.

The exported ONNX model takes raw features, so imputation, the log
transform and standardization are TensorFlow ops in the model itself, built
only from ops that tf2onnx converts (is_finite, where, maximum, log, exp).
tf2onnx 1.17 has no converter for Log1p or Expm1, so the graph spells them
as log(1 + x) and exp(x) - 1.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from duckmkt import features
from duckmkt.i18n import _

logger = logging.getLogger(__name__)

HEADS = ("purchase_prob", "expected_spend", "churn_risk", "expected_purchases")
RESPONSE_HEADS = ("response_prob",)
# Heads that output a probability; calibration and class weights apply to them.
PROBABILITY_HEADS = ("purchase_prob", "churn_risk", "response_prob")


@dataclass(frozen=True)
class Preprocessing:
    """Training statistics the model's first layer applies to raw features."""

    feature_names: tuple[str, ...]
    median: np.ndarray
    log_features: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray
    # False for a feature with no value in any training row: its input is multiplied by 0.
    used: np.ndarray
    # Range of each feature after imputation and the log transform, over the
    # training rows. Inputs are clipped to it, so a customer beyond anything
    # seen in training (a longer tenure at a later cutoff, say) gets the edge
    # value instead of an extrapolation that the exp of the spend head would
    # blow up.
    low: np.ndarray
    high: np.ndarray

    @property
    def log_mask(self) -> np.ndarray:
        return np.array([name in self.log_features for name in self.feature_names])

    def transform(self, matrix: np.ndarray) -> np.ndarray:
        """Apply the preprocessing in numpy, as the graph does (used to check the graph)."""
        filled = np.where(np.isfinite(matrix), matrix, self.median)
        logged = np.where(self.log_mask, np.log1p(np.maximum(filled, 0.0)), filled)
        clipped = np.clip(logged, self.low, self.high)
        return ((clipped - self.mean) / self.std * self.used).astype(np.float32)

    def as_metadata(self) -> dict[str, object]:
        names = self.feature_names
        return {
            "imputation": {name: float(value) for name, value in zip(names, self.median)},
            "log_features": list(self.log_features),
            "scaling": {
                "mean": {name: float(value) for name, value in zip(names, self.mean)},
                "std": {name: float(value) for name, value in zip(names, self.std)},
            },
            # Null bounds mark a feature with no value in any training row.
            "feature_ranges": {
                name: {"min": _finite_or_none(low), "max": _finite_or_none(high)}
                for name, low, high in zip(names, self.minimum, self.maximum)
            },
            "unused_features": [name for name, is_used in zip(names, self.used) if not is_used],
            # Inputs are clipped to this range after imputation and the log transform.
            "clip_range": {
                name: {"low": float(low), "high": float(high)} for name, low, high in zip(names, self.low, self.high)
            },
        }


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def fit_preprocessing(matrix: np.ndarray, feature_names: tuple[str, ...]) -> Preprocessing:
    """Compute medians, log flags and scaling from the training matrix."""
    by_name = {feature.name: feature for feature in features.FEATURES}
    log_features = tuple(name for name in feature_names if name in by_name and by_name[name].log_transform)
    log_mask = np.array([name in log_features for name in feature_names])

    values = matrix.astype(np.float64)
    finite = np.isfinite(values)
    used = finite.any(axis=0)
    unused = [name for name, is_used in zip(feature_names, used) if not is_used]
    if unused:
        # A source the shop does not track (browsing, profiles) leaves a
        # feature NULL in every row; the model then ignores that input.
        logger.warning(_("No training row has a value for %s; the model ignores these features"), ", ".join(unused))
    for name, n_missing, is_used in zip(feature_names, (~finite).sum(axis=0), used):
        if is_used and n_missing:
            # Counted, not listed: the log must not show customer rows.
            logger.warning(
                _("%s is missing in %s of %s training rows; the model imputes the training median"),
                name, f"{int(n_missing):,}", f"{len(values):,}",
            )

    masked = np.where(finite, values, np.nan)
    median = np.zeros(len(feature_names))
    minimum = np.full(len(feature_names), np.nan)
    maximum = np.full(len(feature_names), np.nan)
    if used.any():
        median[used] = np.nanmedian(masked[:, used], axis=0)
        minimum[used] = np.nanmin(masked[:, used], axis=0)
        maximum[used] = np.nanmax(masked[:, used], axis=0)
    filled = np.where(finite, values, median)
    logged = np.where(log_mask, np.log1p(np.maximum(filled, 0.0)), filled)
    low = np.where(used, logged.min(axis=0), 0.0)
    high = np.where(used, logged.max(axis=0), 0.0)
    mean = np.where(used, logged.mean(axis=0), 0.0)
    std = np.where(used, logged.std(axis=0), 1.0)
    # A constant feature carries no signal, and scale 1 keeps it finite.
    std = np.where(std > 1e-12, std, 1.0)

    return Preprocessing(
        feature_names=tuple(feature_names),
        median=median.astype(np.float32),
        log_features=log_features,
        mean=mean.astype(np.float32),
        std=std.astype(np.float32),
        minimum=minimum.astype(np.float32),
        maximum=maximum.astype(np.float32),
        used=used,
        low=low.astype(np.float32),
        high=high.astype(np.float32),
    )


class RawFeaturePreprocessing(keras.layers.Layer):
    """Impute non-finite values with the training median, log1p the heavy-tailed features, standardize.

    Features with no training value are multiplied by 0, so their input
    weights never matter.
    """

    def __init__(self, median, log_mask, mean, std, used, low, high, **kwargs):
        super().__init__(**kwargs)
        self.low = np.asarray(low, dtype=np.float32)
        self.high = np.asarray(high, dtype=np.float32)
        self.used = np.asarray(used, dtype=np.float32)
        self.median = np.asarray(median, dtype=np.float32)
        self.log_mask = np.asarray(log_mask, dtype=bool)
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)

    def call(self, inputs):
        median = tf.constant(self.median)
        # Two selects conditioned directly on IsNaN and IsInf: tf2onnx turns
        # any other float select (is_finite included) into cond * x +
        # (1 - cond) * y, where 0 * NaN would leave the NaN in place.
        filled = tf.where(tf.math.is_nan(inputs), median, inputs)
        filled = tf.where(tf.math.is_inf(filled), median, filled)
        # Negative values of a log feature (none expected) are clipped to 0
        # so log1p stays finite.
        logged = tf.where(tf.constant(self.log_mask), tf.math.log(tf.maximum(filled, 0.0) + 1.0), filled)
        clipped = tf.minimum(tf.maximum(logged, tf.constant(self.low)), tf.constant(self.high))
        return (clipped - tf.constant(self.mean)) / tf.constant(self.std) * tf.constant(self.used)

    def get_config(self):
        config = super().get_config()
        config.update(
            median=self.median.tolist(),
            log_mask=self.log_mask.tolist(),
            mean=self.mean.tolist(),
            std=self.std.tolist(),
            used=self.used.tolist(),
            low=self.low.tolist(),
            high=self.high.tolist(),
        )
        return config


class LogSpendOutput(keras.layers.Layer):
    """Map the spend logit z to expm1(softplus(z)): non-negative spend in currency units.

    softplus keeps the gradient alive for rows predicted near zero, where a
    ReLU would stop learning.
    """

    def call(self, inputs):
        return tf.math.exp(tf.math.softplus(inputs)) - 1.0


def log_space_absolute_error(y_true, y_pred):
    """Absolute error between log1p(spend) and log1p(prediction).

    The minimizer of an absolute error is the conditional median, and the
    median commutes with the monotone log1p, so the head estimates the median
    spend in currency units, which is what the MAE metric rewards.
    """
    y_true = tf.cast(y_true, y_pred.dtype)
    return tf.reduce_mean(tf.abs(tf.math.log1p(tf.maximum(y_true, 0.0)) - tf.math.log1p(y_pred)), axis=-1)


def build_model(
    preprocessing: Preprocessing,
    *,
    hidden_units: tuple[int, ...],
    dropout: float,
    l2: float,
    heads: tuple[str, ...] = HEADS,
) -> keras.Model:
    """Build the functional network: raw features in, one output per name in ``heads``.

    Probability heads are sigmoid units; expected_spend and expected_purchases
    are non-negative amounts through ``LogSpendOutput``.
    """
    n_features = len(preprocessing.feature_names)
    inputs = keras.Input(shape=(n_features,), dtype="float32", name="features")
    hidden = RawFeaturePreprocessing(
        preprocessing.median,
        preprocessing.log_mask,
        preprocessing.mean,
        preprocessing.std,
        preprocessing.used,
        preprocessing.low,
        preprocessing.high,
        name="preprocessing",
    )(inputs)

    regularizer = keras.regularizers.L2(l2) if l2 > 0 else None
    for index, units in enumerate(hidden_units):
        hidden = keras.layers.Dense(units, activation="relu", kernel_regularizer=regularizer, name=f"dense_{index}")(hidden)
        if dropout > 0:
            hidden = keras.layers.Dropout(dropout, name=f"dropout_{index}")(hidden)

    outputs = {}
    for head in heads:
        if head in PROBABILITY_HEADS:
            outputs[head] = keras.layers.Dense(1, activation="sigmoid", name=head)(hidden)
        else:
            logit = keras.layers.Dense(1, name=f"{head}_logit")(hidden)
            outputs[head] = LogSpendOutput(name=head)(logit)
    return keras.Model(inputs=inputs, outputs=outputs, name="customer_model")


def weighted_binary_crossentropy(positive_weight: float):
    """Return a binary cross-entropy whose positive rows weigh ``positive_weight`` times a negative row.

    Weighting the rare class counters class imbalance; the probabilities it
    leaves are shifted and are recalibrated after training.
    """
    epsilon = 1e-7

    def loss(y_true, y_pred):
        y_true = tf.cast(y_true, y_pred.dtype)
        y_pred = tf.clip_by_value(y_pred, epsilon, 1.0 - epsilon)
        terms = positive_weight * y_true * tf.math.log(y_pred) + (1.0 - y_true) * tf.math.log(1.0 - y_pred)
        return -tf.reduce_mean(terms, axis=-1)

    return loss


def compile_model(
    model: keras.Model, *, learning_rate: float, positive_weights: dict[str, float] | None = None
) -> None:
    """Attach the optimizer and one loss per head; ``positive_weights`` maps a probability head to its class weight."""
    positive_weights = positive_weights or {}
    losses = {}
    for head in model_heads(model):
        if head in PROBABILITY_HEADS:
            losses[head] = weighted_binary_crossentropy(float(positive_weights.get(head, 1.0)))
        else:
            losses[head] = log_space_absolute_error
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss=losses)


def model_heads(model: keras.Model) -> tuple[str, ...]:
    """Return the names of the model's outputs, in the order of ``HEADS`` or ``RESPONSE_HEADS``."""
    names = set(model.output.keys()) if isinstance(model.output, dict) else {tensor.name for tensor in model.outputs}
    return tuple(head for head in HEADS + RESPONSE_HEADS if head in names)


def predict(model: keras.Model, matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Run the Keras model in inference mode; each head is a float32 [N, 1] array."""
    outputs = model(tf.constant(matrix, dtype=tf.float32), training=False)
    return {head: np.asarray(outputs[head], dtype=np.float32).reshape(-1, 1) for head in model_heads(model)}


class PlattCalibration(keras.layers.Layer):
    """Map a probability p to sigmoid(slope * logit(p) + intercept) (Platt scaling).

    logit(p) is spelled log(p) - log(1 - p) on p clipped to [1e-7, 1 - 1e-7],
    because tf2onnx converts Log but not a fused logit op.
    """

    def __init__(self, slope: float, intercept: float, **kwargs):
        super().__init__(**kwargs)
        self.slope = float(slope)
        self.intercept = float(intercept)

    def call(self, inputs):
        clipped = tf.clip_by_value(inputs, 1e-7, 1.0 - 1e-7)
        logit = tf.math.log(clipped) - tf.math.log(1.0 - clipped)
        return tf.math.sigmoid(self.slope * logit + self.intercept)

    def get_config(self):
        config = super().get_config()
        config.update(slope=self.slope, intercept=self.intercept)
        return config


def calibrated_model(model: keras.Model, calibration: dict[str, tuple[float, float]]) -> keras.Model:
    """Return a model with the same input whose heads in ``calibration`` pass through Platt scaling.

    ``calibration`` maps a probability head to (slope, intercept). The other
    heads are passed through unchanged.
    """
    heads = model_heads(model)
    inputs = keras.Input(shape=model.inputs[0].shape[1:], dtype="float32", name="features")
    raw = model(inputs)
    outputs = {}
    for head in heads:
        if head in calibration:
            slope, intercept = calibration[head]
            outputs[head] = PlattCalibration(slope, intercept, name=f"{head}_calibrated")(raw[head])
        else:
            outputs[head] = raw[head]
    return keras.Model(inputs=inputs, outputs=outputs, name=f"{model.name}_calibrated")
