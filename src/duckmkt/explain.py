"""Shapley attributions of the customer model's scores, and ``explain_customer``.

For one customer x, the attribution of feature j on a head is its Shapley
value in the game v(S) = sum_k w_k f(x_S, b_k), where f is the ONNX model,
x_S takes the customer's values for the features in S and b_k is a
background row stored with the model. The attributions of a row add up to
f(x) - v(empty set): the prediction minus the baseline, which is the
weighted mean prediction on the background.

The Shapley values are estimated by sampling feature orderings in antithetic
pairs (an ordering and its reverse), as ``shap.PermutationExplainer`` does.
Every ordering's marginal contributions telescope to f(x) - baseline, so the
sum property is exact for any number of orderings, and only the split
between features carries sampling error. Features that no training row had
(the model multiplies them by 0) take no part and get 0.

The background is k-means centroids of the training rows, computed in the
model's standardized space and mapped back to raw units. A cluster with
fewer than ``MIN_CLUSTER_SIZE`` training rows is merged into its nearest
neighbor, so no centroid is close to a single customer's row.

This module imports ONNX Runtime and numpy only; ``fit_background`` also
needs scikit-learn, which the ``train`` extra installs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.types as pat

from duckmkt.errors import DuckmktError, FeatureError, ModelError
from duckmkt.features import FEATURES
from duckmkt.i18n import N_, _, get_language

logger = logging.getLogger(__name__)

# Background defaults: at most 16 centroids, each the mean of at least 10
# training rows.
N_CLUSTERS = 16
MIN_CLUSTER_SIZE = 10
# Orderings sampled per row, as antithetic pairs. More orderings cost
# proportionally more model runs and shrink only the sampling error of the
# split between features. benchmarks/explain_accuracy.py measures both.
N_PERMUTATIONS = 64
# Up to this many used features every coalition is evaluated (2**8 = 256 per
# background row, about the cost of the sampled orderings) and the values are exact.
EXACT_MAX_PLAYERS = 8
# Rows of hybrid inputs per ONNX Runtime call, which bounds the memory of a
# batch (about 116 bytes per row with 29 features). In one measurement with
# ONNX Runtime 1.32, 65,536-row batches also ran faster per row than 10**6-row ones.
MAX_HYBRID_ROWS = 65_536
# Training rows whose attributions are averaged into the global importance.
IMPORTANCE_ROWS = 256
DEFAULT_TOP_K = 5

DIRECTIONS = ("increases", "decreases")

Predictor = Callable[[np.ndarray], Mapping[str, np.ndarray]]

HEAD_LABELS = {
    "purchase_prob": N_("the purchase probability"),
    "expected_spend": N_("the expected spend"),
    "churn_risk": N_("the churn risk"),
    "expected_purchases": N_("the expected number of purchases"),
    "response_prob": N_("the response probability"),
}

# One reason template per feature and direction. {value} is the customer's
# value, formatted in the feature's unit, and {head} the head's label.
REASONS: dict[str, dict[str, str]] = {
    "recency_days": {
        "increases": N_("Last order {value} days before the cutoff raises {head}."),
        "decreases": N_("Last order {value} days before the cutoff lowers {head}."),
    },
    "tenure_days": {
        "increases": N_("A customer for {value} days: this raises {head}."),
        "decreases": N_("A customer for {value} days: this lowers {head}."),
    },
    "frequency": {
        "increases": N_("{value} orders so far raise {head}."),
        "decreases": N_("{value} orders so far lower {head}."),
    },
    "monetary_value": {
        "increases": N_("Total spend of {value} raises {head}."),
        "decreases": N_("Total spend of {value} lowers {head}."),
    },
    "avg_order_value": {
        "increases": N_("Mean order value of {value} raises {head}."),
        "decreases": N_("Mean order value of {value} lowers {head}."),
    },
    "max_order_value": {
        "increases": N_("Largest order of {value} raises {head}."),
        "decreases": N_("Largest order of {value} lowers {head}."),
    },
    "mean_days_between_orders": {
        "increases": N_("{value} days between orders on average raise {head}."),
        "decreases": N_("{value} days between orders on average lower {head}."),
    },
    "orders_per_month": {
        "increases": N_("{value} orders per month raise {head}."),
        "decreases": N_("{value} orders per month lower {head}."),
    },
    "n_orders_30d": {
        "increases": N_("{value} orders in the last 30 days raise {head}."),
        "decreases": N_("{value} orders in the last 30 days lower {head}."),
    },
    "n_orders_90d": {
        "increases": N_("{value} orders in the last 90 days raise {head}."),
        "decreases": N_("{value} orders in the last 90 days lower {head}."),
    },
    "spend_30d": {
        "increases": N_("Spend of {value} in the last 30 days raises {head}."),
        "decreases": N_("Spend of {value} in the last 30 days lowers {head}."),
    },
    "spend_90d": {
        "increases": N_("Spend of {value} in the last 90 days raises {head}."),
        "decreases": N_("Spend of {value} in the last 90 days lowers {head}."),
    },
    "spend_180d": {
        "increases": N_("Spend of {value} in the last 180 days raises {head}."),
        "decreases": N_("Spend of {value} in the last 180 days lowers {head}."),
    },
    "n_products": {
        "increases": N_("{value} distinct products bought raise {head}."),
        "decreases": N_("{value} distinct products bought lower {head}."),
    },
    "avg_items_per_order": {
        "increases": N_("{value} items per order on average raise {head}."),
        "decreases": N_("{value} items per order on average lower {head}."),
    },
    "avg_unit_price": {
        "increases": N_("Mean price of {value} per item raises {head}."),
        "decreases": N_("Mean price of {value} per item lowers {head}."),
    },
    "n_returns": {
        "increases": N_("{value} orders with a return or cancellation raise {head}."),
        "decreases": N_("{value} orders with a return or cancellation lower {head}."),
    },
    "return_rate": {
        "increases": N_("A return rate of {value} raises {head}."),
        "decreases": N_("A return rate of {value} lowers {head}."),
    },
    "n_views": {
        "increases": N_("{value} product or page views raise {head}."),
        "decreases": N_("{value} product or page views lower {head}."),
    },
    "n_add_to_carts": {
        "increases": N_("{value} add-to-cart events raise {head}."),
        "decreases": N_("{value} add-to-cart events lower {head}."),
    },
    "n_sessions": {
        "increases": N_("{value} browsing sessions raise {head}."),
        "decreases": N_("{value} browsing sessions lower {head}."),
    },
    "days_since_last_view": {
        "increases": N_("Last view {value} days before the cutoff raises {head}."),
        "decreases": N_("Last view {value} days before the cutoff lowers {head}."),
    },
    "view_to_purchase_rate": {
        "increases": N_("Buying {value} of the viewed products raises {head}."),
        "decreases": N_("Buying {value} of the viewed products lowers {head}."),
    },
    "n_email_opens": {
        "increases": N_("{value} e-mail opens raise {head}."),
        "decreases": N_("{value} e-mail opens lower {head}."),
    },
    "n_email_clicks": {
        "increases": N_("{value} e-mail clicks raise {head}."),
        "decreases": N_("{value} e-mail clicks lower {head}."),
    },
    "n_contacts": {
        "increases": N_("{value} marketing contacts raise {head}."),
        "decreases": N_("{value} marketing contacts lower {head}."),
    },
    "days_since_last_contact": {
        "increases": N_("Last marketing contact {value} days before the cutoff raises {head}."),
        "decreases": N_("Last marketing contact {value} days before the cutoff lowers {head}."),
    },
    "age_years": {
        "increases": N_("An age of {value} years raises {head}."),
        "decreases": N_("An age of {value} years lowers {head}."),
    },
    "days_since_signup": {
        "increases": N_("Signed up {value} days before the cutoff: this raises {head}."),
        "decreases": N_("Signed up {value} days before the cutoff: this lowers {head}."),
    },
}

# Generic templates for a feature that has no entry in REASONS.
FALLBACK_REASONS = {
    "increases": N_("{feature} = {value} raises {head}."),
    "decreases": N_("{feature} = {value} lowers {head}."),
}

_UNITS = {feature.name: feature.unit for feature in FEATURES}

_FEATURE_ARROW_TYPE = pa.struct(
    [
        pa.field("feature", pa.string()),
        pa.field("value", pa.float64()),
        pa.field("contribution", pa.float64()),
        pa.field("direction", pa.string()),
        pa.field("reason_code", pa.string()),
        pa.field("reason", pa.string()),
    ]
)
_HEAD_ARROW_TYPE = pa.struct(
    [
        pa.field("prediction", pa.float64()),
        pa.field("baseline", pa.float64()),
        pa.field("other_contribution", pa.float64()),
        pa.field("top_features", pa.list_(_FEATURE_ARROW_TYPE)),
    ]
)

_FEATURE_TYPE = duckdb.struct_type(
    {
        "feature": duckdb.sqltypes.VARCHAR,
        "value": duckdb.sqltypes.DOUBLE,
        "contribution": duckdb.sqltypes.DOUBLE,
        "direction": duckdb.sqltypes.VARCHAR,
        "reason_code": duckdb.sqltypes.VARCHAR,
        "reason": duckdb.sqltypes.VARCHAR,
    }
)
_HEAD_TYPE = duckdb.struct_type(
    {
        "prediction": duckdb.sqltypes.DOUBLE,
        "baseline": duckdb.sqltypes.DOUBLE,
        "other_contribution": duckdb.sqltypes.DOUBLE,
        "top_features": duckdb.list_type(_FEATURE_TYPE),
    }
)


def explanation_arrow_type(heads: tuple[str, ...]) -> pa.StructType:
    """Return the Arrow type of an explanation: one field per head, then model_version."""
    return pa.struct([pa.field(head, _HEAD_ARROW_TYPE) for head in heads] + [pa.field("model_version", pa.string())])


def explanation_type(heads: tuple[str, ...]):
    """Return the DuckDB type of an explanation: one field per head, then model_version."""
    return duckdb.struct_type({**{head: _HEAD_TYPE for head in heads}, "model_version": duckdb.sqltypes.VARCHAR})


@dataclass(frozen=True)
class Background:
    """Weighted background rows in raw feature units; NaN for features the model ignores."""

    rows: np.ndarray
    weights: np.ndarray

    def as_metadata(self, feature_names: tuple[str, ...] | list[str], n_training_rows: int) -> dict[str, object]:
        return {
            "method": "kmeans_centroids",
            "n_training_rows": int(n_training_rows),
            "min_cluster_size": MIN_CLUSTER_SIZE,
            "weights": [float(weight) for weight in self.weights],
            # One list per centroid in feature_names order; null where the model ignores the feature.
            "rows": [[float(value) if np.isfinite(value) else None for value in row] for row in self.rows],
        }

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, object]) -> Background:
        background = metadata.get("background")
        if not isinstance(background, Mapping) or not background.get("rows"):
            raise ModelError(
                _(
                    "Model version {version} has no explanation background in its metadata; "
                    "retrain it with this duckmkt version to use explain_customer."
                ).format(version=metadata.get("version"))
            )
        rows = np.array(
            [[np.nan if value is None else value for value in row] for row in background["rows"]], dtype=np.float32
        )
        weights = np.asarray(background["weights"], dtype=np.float64)
        return cls(rows=rows, weights=weights / weights.sum())


def fit_background(
    transformed: np.ndarray,
    *,
    mean: np.ndarray,
    std: np.ndarray,
    log_mask: np.ndarray,
    used: np.ndarray,
    n_clusters: int = N_CLUSTERS,
    min_cluster_size: int = MIN_CLUSTER_SIZE,
    seed: int = 0,
) -> Background:
    """Cluster the standardized training rows and return the centroids in raw units.

    ``transformed`` is the training matrix after the model's preprocessing
    (imputed, log1p-transformed, clipped and standardized). Clusters smaller
    than ``min_cluster_size`` are merged into the nearest remaining one.
    Raises DuckmktError when there are fewer than ``min_cluster_size`` rows.
    """
    from sklearn.cluster import KMeans

    n_rows = transformed.shape[0]
    if n_rows < min_cluster_size:
        raise DuckmktError(
            _("The explanation background needs at least {minimum} training rows; there are {count}.").format(
                minimum=min_cluster_size, count=n_rows
            )
        )
    data = transformed.astype(np.float64)
    n_clusters = max(1, min(n_clusters, n_rows // min_cluster_size))
    labels = KMeans(n_clusters=n_clusters, n_init=4, random_state=seed).fit_predict(data)

    # Merge small clusters one at a time, smallest first, into the nearest
    # other centroid, until every cluster has min_cluster_size rows.
    while True:
        clusters, counts = np.unique(labels, return_counts=True)
        if counts.min() >= min_cluster_size or len(clusters) == 1:
            break
        smallest = clusters[np.argmin(counts)]
        centroids = {cluster: data[labels == cluster].mean(axis=0) for cluster in clusters}
        others = [cluster for cluster in clusters if cluster != smallest]
        nearest = min(others, key=lambda cluster: float(np.sum((centroids[cluster] - centroids[smallest]) ** 2)))
        labels = np.where(labels == smallest, nearest, labels)

    clusters, counts = np.unique(labels, return_counts=True)
    centroids = np.array([data[labels == cluster].mean(axis=0) for cluster in clusters])
    logged = centroids * np.asarray(std, dtype=np.float64) + np.asarray(mean, dtype=np.float64)
    raw = np.where(log_mask, np.expm1(logged), logged)
    raw = np.where(used, raw, np.nan)
    return Background(rows=raw.astype(np.float32), weights=counts / counts.sum())


@dataclass
class Attributions:
    """Shapley attributions of a batch of rows: per head, an [N, F] matrix of contributions."""

    predictions: dict[str, np.ndarray]
    baseline: dict[str, float]
    contributions: dict[str, np.ndarray]


class ShapleyExplainer:
    """Shapley values of a predictor against a weighted background.

    ``predict`` maps a float32 matrix [N, F] to one array per head. ``players``
    are the column indices that take part. Every other column keeps the
    row's value and gets a contribution of 0, which is exact when the model
    ignores those columns. With at most ``EXACT_MAX_PLAYERS`` players every
    coalition is evaluated and the values are exact; with more, orderings are
    sampled in antithetic pairs.
    """

    def __init__(
        self,
        predict: Predictor,
        background: Background,
        players: np.ndarray,
        *,
        n_permutations: int = N_PERMUTATIONS,
        seed: int = 0,
    ):
        if n_permutations < 2 or n_permutations % 2:
            raise DuckmktError(
                _("n_permutations must be an even number of at least 2; it is {value}.").format(value=n_permutations)
            )
        self.predict = predict
        self.background = background
        self.players = np.asarray(players, dtype=np.int64)
        self.n_permutations = n_permutations
        self.seed = seed

        outputs = predict(background.rows)
        self.heads = tuple(outputs)
        self.baseline = {
            head: float(np.dot(background.weights, np.asarray(values, dtype=np.float64).reshape(-1)))
            for head, values in outputs.items()
        }
        self.exact = len(self.players) <= EXACT_MAX_PLAYERS
        if self.exact:
            self.coalitions = _all_coalitions(len(self.players))
        else:
            self.permutations = _antithetic_permutations(len(self.players), n_permutations, seed)
            self.coalitions = _prefix_coalitions(self.permutations)

    @property
    def method(self) -> str:
        return "exact" if self.exact else "antithetic_permutations"

    def explain(self, matrix: np.ndarray) -> Attributions:
        """Return the predictions, the baseline and the attributions of each row of ``matrix``."""
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        n_rows, n_features = matrix.shape
        outputs = self.predict(matrix)
        predictions = {head: np.asarray(outputs[head], dtype=np.float64).reshape(-1) for head in self.heads}
        contributions = {head: np.zeros((n_rows, n_features)) for head in self.heads}
        if n_rows == 0 or len(self.players) == 0:
            return Attributions(predictions, dict(self.baseline), contributions)

        rows_per_customer = max(1, len(self.coalitions) * len(self.background.weights))
        chunk = max(1, MAX_HYBRID_ROWS // rows_per_customer)
        for start in range(0, n_rows, chunk):
            stop = min(start + chunk, n_rows)
            values = self._coalition_values(matrix[start:stop], {head: predictions[head][start:stop] for head in self.heads})
            for head in self.heads:
                player_values = self._exact(values[head]) if self.exact else self._sampled(values[head])
                contributions[head][start:stop, self.players] = player_values
        return Attributions(predictions, dict(self.baseline), contributions)

    def _coalition_values(self, matrix: np.ndarray, predictions: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Return v(S) for every row and every coalition in ``self.coalitions``, per head, as [N, C] arrays.

        v(all players) is the prediction, and every other coalition is
        evaluated against the background. v(empty) equals the baseline when the model
        ignores the columns that are not players.
        """
        n_rows, n_features = matrix.shape
        background = self.background.rows
        full = self.coalitions.sum(axis=1) == len(self.players)
        partial = ~full

        values = {head: np.empty((n_rows, len(self.coalitions))) for head in self.heads}
        for head in self.heads:
            values[head][:, full] = predictions[head][:, None]

        # from_row[c, j] is true when column j comes from the row in
        # coalition c. A column that is not a player always does.
        from_row = np.ones((int(partial.sum()), n_features), dtype=bool)
        from_row[:, self.players] = self.coalitions[partial]
        hybrid = np.where(
            from_row[None, :, None, :],
            matrix[:, None, None, :],
            background[None, None, :, :],
        ).reshape(-1, n_features)
        outputs = self.predict(hybrid)
        for head in self.heads:
            evaluated = np.asarray(outputs[head], dtype=np.float64).reshape(n_rows, int(partial.sum()), len(background))
            values[head][:, partial] = evaluated @ self.background.weights
        return values

    def _sampled(self, values: np.ndarray) -> np.ndarray:
        """Average the marginal contributions along each sampled ordering."""
        n_rows = values.shape[0]
        n_players = len(self.players)
        per_ordering = values.reshape(n_rows, self.n_permutations, n_players + 1)
        marginal = np.diff(per_ordering, axis=2)
        result = np.zeros((n_rows, n_players))
        for ordering in range(self.n_permutations):
            result[:, self.permutations[ordering]] += marginal[:, ordering, :]
        return result / self.n_permutations

    def _exact(self, values: np.ndarray) -> np.ndarray:
        """Apply the Shapley formula over all coalitions, indexed by their bit masks."""
        n_players = len(self.players)
        masks = np.arange(len(self.coalitions))
        sizes = self.coalitions.sum(axis=1)
        # |S|! (M - |S| - 1)! / M! for a coalition S without the player.
        weights = np.array(
            [math.factorial(size) * math.factorial(n_players - size - 1) / math.factorial(n_players) if size < n_players else 0.0 for size in range(n_players + 1)]
        )
        result = np.zeros((values.shape[0], n_players))
        for player in range(n_players):
            without = masks[(masks >> player) & 1 == 0]
            gains = values[:, without | (1 << player)] - values[:, without]
            result[:, player] = gains @ weights[sizes[without]]
        return result


def _antithetic_permutations(n_players: int, n_permutations: int, seed: int) -> np.ndarray:
    """Return ``n_permutations`` orderings of the players: random ones, each followed by its reverse."""
    rng = np.random.default_rng(seed)
    orderings = []
    for _pair in range(n_permutations // 2):
        forward = rng.permutation(n_players)
        orderings.extend([forward, forward[::-1]])
    return np.array(orderings, dtype=np.int64).reshape(n_permutations, n_players)


def _prefix_coalitions(permutations: np.ndarray) -> np.ndarray:
    """Return the coalitions of every prefix (length 0 to M) of every ordering, ordering by ordering."""
    n_permutations, n_players = permutations.shape
    ranks = np.empty_like(permutations)
    ranks[np.arange(n_permutations)[:, None], permutations] = np.arange(n_players)[None, :]
    lengths = np.arange(n_players + 1)
    return (ranks[:, None, :] < lengths[None, :, None]).reshape(-1, n_players)


def _all_coalitions(n_players: int) -> np.ndarray:
    """Return every coalition of ``n_players`` players; row c contains player j when bit j of c is set."""
    masks = np.arange(1 << n_players)
    return ((masks[:, None] >> np.arange(n_players)[None, :]) & 1).astype(bool)


def explainer_for(scorer, *, n_permutations: int = N_PERMUTATIONS, seed: int = 0) -> ShapleyExplainer:
    """Return the explainer of a loaded ``duckmkt.scoring.Scorer`` with the background in its metadata."""
    metadata = scorer.metadata
    background = Background.from_metadata(metadata)
    unused = set(metadata.get("unused_features", []))
    players = np.array([index for index, name in enumerate(scorer.feature_names) if name not in unused])
    return ShapleyExplainer(scorer.predict_matrix, background, players, n_permutations=n_permutations, seed=seed)


def global_importance(
    explainer: ShapleyExplainer, matrix: np.ndarray, feature_names: list[str] | tuple[str, ...]
) -> dict[str, dict[str, float]]:
    """Return, per head, each feature's mean absolute attribution over the rows of ``matrix``, largest first."""
    attributions = explainer.explain(matrix)
    result = {}
    for head in explainer.heads:
        means = np.abs(attributions.contributions[head]).mean(axis=0)
        order = np.argsort(-means, kind="stable")
        result[head] = {feature_names[index]: float(means[index]) for index in order}
    return result


def importance_metadata(
    explainer: ShapleyExplainer, matrix: np.ndarray, feature_names: list[str] | tuple[str, ...], *, seed: int = 0
) -> dict[str, object]:
    """Return the ``global_importance`` metadata entry: mean |attribution| on a sample of training rows."""
    n_rows = matrix.shape[0]
    if n_rows > IMPORTANCE_ROWS:
        sample = np.sort(np.random.default_rng(seed).choice(n_rows, IMPORTANCE_ROWS, replace=False))
        matrix = matrix[sample]
    return {
        "method": "mean_abs_shapley",
        "n_rows": int(matrix.shape[0]),
        "n_permutations": explainer.n_permutations,
        "baseline": dict(explainer.baseline),
        "values": global_importance(explainer, matrix, feature_names),
    }


def format_value(feature: str, value: float) -> str:
    """Format a feature value in its unit for a reason text."""
    if value is None or not math.isfinite(value):
        return _("no value (imputed)")
    unit = _UNITS.get(feature, "")
    if unit == "share":
        return f"{value:.0%}"
    if unit.startswith("currency"):
        return f"{value:,.2f}"
    if float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.1f}"


def reason_code(feature: str, direction: str) -> str:
    """Return the stable code of a reason, ``<feature>.<direction>``."""
    return f"{feature}.{direction}"


def reason_text(feature: str, direction: str, value: float, head: str) -> str:
    """Return the reason for a contribution in the active language."""
    template = REASONS.get(feature, FALLBACK_REASONS)[direction]
    head_label = _(HEAD_LABELS[head]) if head in HEAD_LABELS else head
    return _(template).format(feature=feature, value=format_value(feature, value), head=head_label)


def top_features(
    contributions: np.ndarray, values: np.ndarray, feature_names: list[str], head: str, top_k: int
) -> tuple[list[dict[str, object]], float]:
    """Return the ``top_k`` non-zero contributions of one row, largest magnitude first, and the sum of the rest."""
    order = np.argsort(-np.abs(contributions), kind="stable")
    chosen = [index for index in order[:top_k] if contributions[index] != 0.0]
    items = []
    for index in chosen:
        feature = feature_names[index]
        contribution = float(contributions[index])
        direction = "increases" if contribution > 0 else "decreases"
        value = float(values[index])
        items.append(
            {
                "feature": feature,
                "value": value if math.isfinite(value) else None,
                "contribution": contribution,
                "direction": direction,
                "reason_code": reason_code(feature, direction),
                "reason": reason_text(feature, direction, value, head),
            }
        )
    other = float(contributions.sum() - sum(contributions[index] for index in chosen))
    return items, other


def explanation_records(
    attributions: Attributions, matrix: np.ndarray, feature_names: list[str], version: str, top_k: int
) -> list[dict[str, object]]:
    """Return one explanation dict per row, shaped like ``explanation_type``."""
    records = []
    for row in range(matrix.shape[0]):
        record: dict[str, object] = {}
        for head in attributions.baseline:
            items, other = top_features(attributions.contributions[head][row], matrix[row], feature_names, head, top_k)
            record[head] = {
                "prediction": float(attributions.predictions[head][row]),
                "baseline": attributions.baseline[head],
                "other_contribution": other,
                "top_features": items,
            }
        record["model_version"] = version
        records.append(record)
    return records


class CustomerExplainer:
    """The ``explain_customer`` UDF: a scorer, its explainer and the conversion from and to Arrow."""

    def __init__(self, scorer, *, n_permutations: int = N_PERMUTATIONS, seed: int = 0):
        self.scorer = scorer
        self.explainer = explainer_for(scorer, n_permutations=n_permutations, seed=seed)
        self.arrow_type = explanation_arrow_type(self.explainer.heads)

    def explain_arrow(self, structs: pa.Array | pa.ChunkedArray, top_k: pa.Array | None = None) -> pa.StructArray:
        """Explain a batch of feature structs; a NULL struct gives a NULL explanation."""
        if isinstance(structs, pa.ChunkedArray):
            structs = structs.combine_chunks()
        if not pat.is_struct(structs.type):
            raise FeatureError(
                _(
                    "explain_customer expects a struct of features, for example explain_customer(f) "
                    "with f a row of mkt.customer_features; it got {type}."
                ).format(type=structs.type)
            )
        k = _top_k(top_k, len(self.scorer.feature_names))
        if len(structs) == 0:
            return pa.array([], type=self.arrow_type)

        matrix = self.scorer.feature_matrix(structs)
        valid = np.ones(len(structs), dtype=bool) if not structs.null_count else ~structs.is_null().to_numpy(zero_copy_only=False)
        records: list[dict | None] = [None] * len(structs)
        if valid.any():
            attributions = self.explainer.explain(matrix[valid])
            explained = explanation_records(attributions, matrix[valid], self.scorer.feature_names, self.scorer.version, k)
            for position, record in zip(np.flatnonzero(valid), explained):
                records[position] = record
        logger.debug("Explained %d rows in language %s", int(valid.sum()), get_language())
        return pa.array(records, type=self.arrow_type)


def _top_k(argument: pa.Array | pa.ChunkedArray | None, n_features: int) -> int:
    """Read the optional second argument of explain_customer: one whole number from 1 to n_features."""
    if argument is None:
        return DEFAULT_TOP_K
    values = set(argument.to_pylist())
    if len(values) > 1 or not values or not all(isinstance(value, int) and 1 <= value <= n_features for value in values):
        raise DuckmktError(
            _("explain_customer: top_k must be one whole number from 1 to {maximum}; it is {value}.").format(
                # One value as itself ("0"); several rows' values as a list.
                maximum=n_features,
                value=next(iter(values)) if len(values) == 1 else ", ".join(str(value) for value in sorted(values, key=str)),
            )
        )
    return values.pop()


def register(con: duckdb.DuckDBPyConnection, scorer) -> CustomerExplainer | None:
    """Register ``explain_customer(f [, top_k])`` on ``con`` for the model of ``scorer``.

    Returns None, and registers nothing, when the model has no explanation
    background (models trained before it was added to the metadata).
    """
    if "background" not in scorer.metadata:
        logger.info("Model version %s has no explanation background; explain_customer is not registered", scorer.version)
        return None
    explainer = CustomerExplainer(scorer)
    try:
        con.remove_function("explain_customer")
    except duckdb.InvalidInputException:
        pass

    def explain_customer(*arguments):
        # A variadic signature lets DuckDB accept one or two arguments.
        return explainer.explain_arrow(*arguments)

    # Imported here: duckmkt.scoring imports this module.
    from duckmkt.scoring import keep_alive

    keep_alive(explain_customer)
    con.create_function(
        "explain_customer",
        explain_customer,
        parameters=None,
        return_type=explanation_type(explainer.explainer.heads),
        type="arrow",
        null_handling="special",
        side_effects=False,
    )
    return explainer
