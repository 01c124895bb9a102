"""Train the recommender ranker, export it to ONNX and save it.

The network scores every (customer, product) pair of the vocabulary from
signals that are each computed at the cutoff:

* the customer's own history of the product: decayed purchase and browsing
  weight, number of orders, and days since the latest purchase (repeat
  purchases dominate this wholesale data);
* the item-to-item co-purchase score: the history times the cosine
  similarity of products over all customers' purchases before the cutoff;
* the product's number of buyers in the last 30 and 90 days;
* the number of distinct products the customer bought.

A small multilayer perceptron, shared by all products, turns these signals
into one logit per pair, and a learned bias per product is added. A softmax
over the products gives the probability distribution of the customer's next
purchases, and the loss is the categorical cross-entropy against the
products bought in the next ``horizon_days``. Training rows come from many
cutoffs before the training cutoff, each with its own point-in-time
co-purchase similarity and popularity, and each looking ``horizon_days``
ahead, so no target is at or after the training cutoff.

The exported ONNX model contains the co-purchase similarity at the training
cutoff as a constant, so it takes ``history``, ``order_count`` and
``days_since_purchase`` per customer and ``popularity`` per product.

``RecommenderTrainer`` follows the scikit-learn contract: parameters in
``__init__``, ``fit`` returns self, learned state ends in ``_``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

# Imported before keras and tensorflow, because importing duckmkt.training
# sets TF_CPP_MIN_LOG_LEVEL and imports TensorFlow with its C++ start-up log
# lines hidden, as 'duckmkt train' does.
import duckmkt.training  # noqa: F401

import duckdb
import keras
import numpy as np
import tensorflow as tf
import tf2onnx
from scipy import sparse

from duckmkt import registry
from duckmkt.errors import DataError, ExportError
from duckmkt.i18n import _
from duckmkt.recommend import DEFAULT_MODEL_NAME, baselines, data
from duckmkt.training.trainer import DataProgress, ProgressCallback, EpochReporter

logger = logging.getLogger(__name__)

OPSET = 17
# Per-customer inputs [N, products], then the per-product popularity
# [products, len(data.POPULARITY_WINDOWS_DAYS)].
CUSTOMER_INPUTS = ("history", "order_count", "days_since_purchase")
POPULARITY_INPUT = "popularity"
INPUT_NAMES = CUSTOMER_INPUTS + (POPULARITY_INPUT,)
OUTPUT_NAME = "scores"
# Largest allowed absolute difference between ONNX Runtime and Keras on any
# output probability.
PARITY_TOLERANCE = 1e-5
# The co-purchase similarity is a dense products x products float32 constant
# of the ONNX model: 20,000 products take 1.6 GB.
MAX_PRODUCTS = 20_000


def _log1p(values):
    # log(1 + x) rather than log1p, which tf2onnx 1.17 cannot convert.
    return tf.math.log(tf.maximum(values, 0.0) + 1.0)


class RankerFeatures(keras.layers.Layer):
    """Signals of each (customer, product) pair, stacked on a last axis of size ``N_SIGNALS``."""

    N_SIGNALS = 10

    def call(self, history, order_count, days_since_purchase, co_purchase, popularity):
        bought = tf.cast(order_count > 0, tf.float32)
        best_co_purchase = tf.reduce_max(co_purchase, axis=1, keepdims=True)
        distinct_products = tf.reduce_sum(bought, axis=1, keepdims=True)
        # Divisors bring each signal to roughly [0, 1] on Online Retail.
        signals = [
            _log1p(history),
            _log1p(order_count),
            bought,
            bought * tf.exp(-days_since_purchase / 30.0),
            bought * tf.exp(-days_since_purchase / 180.0),
            _log1p(co_purchase),
            co_purchase / tf.maximum(best_co_purchase, 1e-6),
            _log1p(popularity[:, :, 0]) / 8.0,
            _log1p(popularity[:, :, 1]) / 8.0,
            tf.broadcast_to(_log1p(distinct_products) / 5.0, tf.shape(history)),
        ]
        return tf.stack(signals, axis=-1)


class ProductBias(keras.layers.Layer):
    """Adds a learned bias per product to the logits."""

    def build(self, input_shape):
        self.bias = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="bias")

    def call(self, logits):
        return logits + self.bias


def build_network(n_products: int, *, hidden_units: tuple[int, ...], l2: float) -> keras.Model:
    """Return the ranker: per-pair signals -> shared MLP -> one logit per product, plus a bias per product."""
    n_windows = len(data.POPULARITY_WINDOWS_DAYS)
    customer_inputs = [keras.Input(shape=(n_products,), name=name) for name in CUSTOMER_INPUTS]
    co_purchase = keras.Input(shape=(n_products,), name="co_purchase")
    popularity = keras.Input(shape=(n_products, n_windows), name=POPULARITY_INPUT)
    hidden = RankerFeatures(name="signals")(*customer_inputs, co_purchase, popularity)
    for layer, units in enumerate(hidden_units):
        hidden = keras.layers.Dense(
            units, activation="relu", kernel_regularizer=keras.regularizers.l2(l2), name=f"hidden_{layer}"
        )(hidden)
    pair_logits = keras.layers.Dense(1, name="pair_logit")(hidden)
    logits = ProductBias(name="product_bias")(keras.layers.Reshape((n_products,), name="logits")(pair_logits))
    return keras.Model(inputs=[*customer_inputs, co_purchase, popularity], outputs=logits, name="recommender")


@dataclass
class _Block:
    """Training rows of one cutoff: customers with a history there and a purchase after it."""

    rows: data.HistoryRows
    co_purchase: sparse.csr_matrix
    popularity: np.ndarray
    targets: sparse.csr_matrix

    def network_inputs(self, rows: np.ndarray | slice = slice(None)) -> list[np.ndarray]:
        dense = self.rows.model_inputs(rows)
        co_purchase = self.co_purchase[rows].toarray().astype(np.float32)
        popularity = np.broadcast_to(self.popularity, (co_purchase.shape[0], *self.popularity.shape))
        return [*(dense[name] for name in CUSTOMER_INPUTS), co_purchase, np.ascontiguousarray(popularity)]


class _Batches(keras.utils.PyDataset):
    """Dense batches from the blocks, each batch from one block; targets are scaled to sum to 1 per row."""

    def __init__(self, blocks: list[_Block], batch_size: int, seed: int, shuffle: bool):
        super().__init__()
        self.blocks, self.batch_size, self.shuffle = blocks, batch_size, shuffle
        self.index = [
            (block, start) for block, rows in enumerate(blocks) for start in range(0, rows.targets.shape[0], batch_size)
        ]
        self.rng = np.random.default_rng(seed)
        if shuffle:
            self.rng.shuffle(self.index)

    def __len__(self):
        return len(self.index)

    def __getitem__(self, index):
        block_index, start = self.index[index]
        block = self.blocks[block_index]
        rows = np.arange(start, min(start + self.batch_size, block.targets.shape[0]))
        y = block.targets[rows].toarray().astype(np.float32)
        y /= np.maximum(y.sum(axis=1, keepdims=True), 1.0)
        return tuple(block.network_inputs(rows)), y

    def on_epoch_end(self):
        if self.shuffle:
            self.rng.shuffle(self.index)


@dataclass
class RecommenderResult:
    """Outcome of ``train_recommender``: where the model is and how training went."""

    model_dir: Path
    version: str
    n_products: int
    n_train_rows: int
    n_validation_rows: int
    n_epochs: int
    parity_max_abs_diff: float
    seconds: float


class RecommenderTrainer:
    """Fit the recommender on rows from cutoffs before ``cutoff``.

    Parameters
    ----------
    horizon_days : int
        Days after each training cutoff whose purchases are the targets.
    step_days : int
        Days between consecutive training cutoffs.
    warmup_days : int
        Days of history before the first training cutoff.
    min_customers : int
        A product enters the vocabulary when at least this many customers bought it before ``cutoff``.
    hidden_units : tuple of int
        Sizes of the hidden layers of the MLP shared by all products.
    l2, learning_rate, batch_size, epochs, patience : network and optimizer settings.
    seed : int
        Seed of Python, numpy and TensorFlow.

    The defaults were chosen on Online Retail at a validation cutoff 30 days
    before the evaluation cutoff of benchmarks/recommend_online_retail.py, so
    the evaluation period played no part. On that block, an item-embedding
    path added to the logits and cutoffs every 7 days scored no better.
    """

    def __init__(
        self,
        *,
        horizon_days: int = 30,
        step_days: int = 14,
        warmup_days: int = 60,
        min_customers: int = 3,
        hidden_units: tuple[int, ...] = (32, 16),
        l2: float = 0.0,
        learning_rate: float = 2e-3,
        batch_size: int = 256,
        epochs: int = 8,
        patience: int = 2,
        seed: int = 0,
    ):
        self.horizon_days = horizon_days
        self.step_days = step_days
        self.warmup_days = warmup_days
        self.min_customers = min_customers
        self.hidden_units = hidden_units
        self.l2 = l2
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.patience = patience
        self.seed = seed

    def fit(
        self, con: duckdb.DuckDBPyConnection, cutoff: date | datetime | str, progress: ProgressCallback | None = None
    ) -> RecommenderTrainer:
        """Build the vocabulary and rows at cutoffs before ``cutoff`` and fit the network.

        ``progress`` receives a ``DataProgress`` per cutoff and an ``EpochProgress`` per epoch.
        """
        cutoff = _as_date(cutoff)
        self.cutoff_ = cutoff
        self.vocabulary_ = data.build_vocabulary(con, cutoff, self.min_customers)
        if len(self.vocabulary_) < 2:
            raise DataError(
                _("Only {count} products were bought by at least {minimum} customers before {cutoff}; load more order lines to train the recommender.").format(
                    count=len(self.vocabulary_), minimum=self.min_customers, cutoff=cutoff
                )
            )
        if len(self.vocabulary_) > MAX_PRODUCTS:
            raise DataError(
                _("{count} products were bought by at least {minimum} customers, more than the recommender's limit of {limit}; raise min_customers.").format(
                    count=len(self.vocabulary_), minimum=self.min_customers, limit=MAX_PRODUCTS
                )
            )

        first_sale = con.execute("select min(ordered_at)::date from mkt.int_sales").fetchall()[0][0]
        last_cutoff = cutoff - timedelta(days=self.horizon_days)
        cutoffs = data.training_cutoffs(first_sale + timedelta(days=self.warmup_days), last_cutoff, self.step_days)
        if len(cutoffs) < 2:
            raise DataError(
                _("The data from {first} to {cutoff} gives {count} training cutoffs; the recommender needs at least 2, so load a longer history or lower --horizon-days.").format(
                    first=first_sale, cutoff=cutoff, count=len(cutoffs)
                )
            )

        blocks = []
        for index, point in enumerate(cutoffs):
            started = time.perf_counter()
            blocks.append(self._block_at(con, point))
            if progress is not None:
                rows = blocks[-1].targets.shape[0]
                seconds = time.perf_counter() - started
                progress(DataProgress(rows=rows, seconds=seconds, cutoff=point, validation=index == len(cutoffs) - 1))
        # The latest cutoff is the validation block for early stopping.
        self.train_blocks_ = [block for block in blocks[:-1] if block.targets.shape[0] > 0]
        self.validation_block_ = blocks[-1]
        self.n_train_rows_ = sum(block.targets.shape[0] for block in self.train_blocks_)
        self.n_validation_rows_ = self.validation_block_.targets.shape[0]
        if self.n_train_rows_ == 0 or self.n_validation_rows_ == 0:
            raise DataError(_("No customer both has a history and buys in the following {days} days; load more order lines.").format(days=self.horizon_days))
        logger.info(
            "Recommender: %d products, %d training rows from %d cutoffs, %d validation rows",
            len(self.vocabulary_), self.n_train_rows_, len(cutoffs) - 1, self.n_validation_rows_,
        )
        # The similarity served with the model: every customer's purchases before the training cutoff.
        self.similarity_ = _similarity_at(con, cutoff, self.vocabulary_)
        return self._fit_network(progress)

    def refit_with_seed(self, seed: int) -> RecommenderTrainer:
        """Return a new trainer with this one's settings and ``seed``, fitted on this one's rows (no SQL)."""
        trainer = RecommenderTrainer(**{**self.get_params(), "seed": seed})
        for name in ("cutoff_", "vocabulary_", "train_blocks_", "validation_block_", "n_train_rows_", "n_validation_rows_", "similarity_"):
            setattr(trainer, name, getattr(self, name))
        return trainer._fit_network()

    def get_params(self) -> dict:
        """Return the constructor parameters."""
        return {
            key: getattr(self, key)
            for key in (
                "horizon_days", "step_days", "warmup_days", "min_customers", "hidden_units", "l2",
                "learning_rate", "batch_size", "epochs", "patience", "seed",
            )
        }

    def _fit_network(self, progress: ProgressCallback | None = None) -> RecommenderTrainer:
        keras.utils.set_random_seed(self.seed)
        self.model_ = build_network(len(self.vocabulary_), hidden_units=tuple(self.hidden_units), l2=self.l2)
        self.model_.compile(
            optimizer=keras.optimizers.Adam(self.learning_rate),
            loss=keras.losses.CategoricalCrossentropy(from_logits=True),
        )
        callbacks = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=self.patience, restore_best_weights=True)]
        if progress is not None:
            callbacks.append(EpochReporter(progress, self.epochs))
        history = self.model_.fit(
            _Batches(self.train_blocks_, self.batch_size, self.seed, shuffle=True),
            validation_data=_Batches([self.validation_block_], self.batch_size, self.seed, shuffle=False),
            epochs=self.epochs,
            verbose=0,
            callbacks=callbacks,
        )
        self.n_epochs_ = len(history.history["loss"])
        return self

    def _block_at(self, con: duckdb.DuckDBPyConnection, cutoff: date) -> _Block:
        rows = data.read_history(con, cutoff, self.vocabulary_)
        similarity = baselines.cosine_similarity(rows.bought)
        targets = data.read_targets(con, cutoff, self.horizon_days, self.vocabulary_, rows.customer_ids)
        keep = (np.asarray(targets.sum(axis=1)).ravel() > 0) & (np.asarray(rows.history.sum(axis=1)).ravel() > 0)
        kept = rows.select(keep)
        return _Block(
            rows=kept,
            co_purchase=(kept.history @ similarity).tocsr(),
            popularity=data.read_popularity(con, cutoff, self.vocabulary_),
            targets=targets[keep],
        )

    def predict(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Return the Keras probabilities for the ONNX inputs ``inputs`` (names in ``INPUT_NAMES``)."""
        history = np.asarray(inputs["history"], dtype=np.float32)
        co_purchase = (history @ self.similarity_).astype(np.float32)
        popularity = np.broadcast_to(inputs[POPULARITY_INPUT], (history.shape[0], *inputs[POPULARITY_INPUT].shape))
        network_inputs = [*(np.asarray(inputs[name], dtype=np.float32) for name in CUSTOMER_INPUTS), co_purchase, popularity]
        logits = self.model_.predict(network_inputs, batch_size=512, verbose=0)
        return tf.nn.softmax(logits).numpy()


def _similarity_at(con: duckdb.DuckDBPyConnection, cutoff: date, vocabulary: list[str]) -> np.ndarray:
    """Return the dense float32 co-purchase similarity of ``vocabulary`` over all purchases before ``cutoff``."""
    rows = data.read_history(con, cutoff, vocabulary)
    return baselines.cosine_similarity(rows.bought).toarray().astype(np.float32)


def export_onnx(model: keras.Model, similarity: np.ndarray) -> bytes:
    """Convert ``model`` to ONNX with the co-purchase ``similarity`` as a constant.

    The inputs are ``INPUT_NAMES`` and the output ``scores`` contains softmax
    probabilities [N, products].
    """
    n_products = similarity.shape[0]
    n_windows = len(data.POPULARITY_WINDOWS_DAYS)
    # A captured tf.constant would become a graph input; tf2onnx freezes variables into initializers.
    similarity_constant = tf.Variable(similarity, dtype=tf.float32, trainable=False, name="co_purchase_similarity")
    signature = [tf.TensorSpec([None, n_products], tf.float32, name=name) for name in CUSTOMER_INPUTS]
    signature.append(tf.TensorSpec([n_products, n_windows], tf.float32, name=POPULARITY_INPUT))

    @tf.function(input_signature=signature)
    def serve(history, order_count, days_since_purchase, popularity):
        co_purchase = tf.matmul(history, similarity_constant)
        per_customer = tf.broadcast_to(popularity[tf.newaxis], [tf.shape(history)[0], n_products, n_windows])
        logits = model([history, order_count, days_since_purchase, co_purchase, per_customer], training=False)
        return {OUTPUT_NAME: tf.identity(tf.nn.softmax(logits), name=OUTPUT_NAME)}

    try:
        model_proto, _storage = tf2onnx.convert.from_function(serve, input_signature=serve.input_signature, opset=OPSET)
    except Exception as error:  # tf2onnx raises bare Exceptions and ValueErrors alike
        raise ExportError(_("Converting the recommender to ONNX with tf2onnx failed: {error}").format(error=error)) from error

    # tf2onnx names inputs and outputs after the TensorFlow tensors, with ':0' appended.
    for graph_input in model_proto.graph.input:
        base = graph_input.name.split(":")[0]
        if base in INPUT_NAMES and graph_input.name != base:
            _rename_tensor(model_proto.graph, graph_input.name, base, is_input=True)
    for output in model_proto.graph.output:
        base = output.name.split(":")[0]
        if base == OUTPUT_NAME and output.name != OUTPUT_NAME:
            _rename_tensor(model_proto.graph, output.name, OUTPUT_NAME, is_input=False)
    return model_proto.SerializeToString()


def _rename_tensor(graph, old: str, new: str, *, is_input: bool) -> None:
    for node in graph.node:
        if is_input:
            node.input[:] = [new if name == old else name for name in node.input]
        else:
            node.output[:] = [new if name == old else name for name in node.output]
    for value in graph.input if is_input else graph.output:
        if value.name == old:
            value.name = new


def check_parity(onnx_bytes: bytes, trainer: RecommenderTrainer, inputs: dict[str, np.ndarray]) -> float:
    """Compare ONNX Runtime with Keras on ``inputs``; return the largest absolute difference or raise ExportError."""
    import onnxruntime as ort

    # An empty history exercises the zero guards of the signals.
    feed = {name: np.vstack([inputs[name], np.zeros((1, inputs[name].shape[1]), dtype=np.float32)]) for name in CUSTOMER_INPUTS}
    feed[POPULARITY_INPUT] = np.asarray(inputs[POPULARITY_INPUT], dtype=np.float32)
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    onnx_scores = session.run([OUTPUT_NAME], feed)[0]
    keras_scores = trainer.predict(feed)
    difference = float(np.max(np.abs(onnx_scores.astype(np.float64) - keras_scores.astype(np.float64))))
    if not np.isfinite(difference) or difference > PARITY_TOLERANCE:
        raise ExportError(
            _("The ONNX recommender differs from Keras by up to {difference:.3g}, more than the tolerance {tolerance:g}; report it with the tf2onnx and TensorFlow versions.").format(
                difference=difference, tolerance=PARITY_TOLERANCE
            )
        )
    return difference


def parity_inputs(trainer: RecommenderTrainer, n_rows: int = 512) -> dict[str, np.ndarray]:
    """Return ONNX inputs from the first ``n_rows`` rows of the validation block, for ``check_parity``."""
    block = trainer.validation_block_
    inputs = block.rows.model_inputs(slice(0, n_rows))
    inputs[POPULARITY_INPUT] = block.popularity
    return inputs


def train_recommender(
    con: duckdb.DuckDBPyConnection,
    *,
    models_dir: str | Path = "models",
    name: str = DEFAULT_MODEL_NAME,
    cutoff: date | datetime | str | None = None,
    progress: ProgressCallback | None = None,
    **trainer_params,
) -> RecommenderResult:
    """Train the recommender on data before ``cutoff`` (default: the day after the latest sale), export and save it."""
    started = time.perf_counter()
    if cutoff is None:
        cutoff = data.latest_cutoff(con)
        if cutoff is None:
            raise DataError(_("mkt.int_sales is empty; load order lines with 'duckmkt load' first."))
    trainer = RecommenderTrainer(**trainer_params).fit(con, cutoff, progress=progress)

    onnx_bytes = export_onnx(trainer.model_, trainer.similarity_)
    parity = check_parity(onnx_bytes, trainer, parity_inputs(trainer))
    metadata = {
        "kind": "recommender",
        "model_kind": "recommender",
        # The model's product axis is the vocabulary, in this order.
        "feature_names": list(trainer.vocabulary_),
        # The registry requires input_name; the ranker has several inputs, listed in input_names.
        "input_name": CUSTOMER_INPUTS[0],
        "input_names": list(INPUT_NAMES),
        "output_names": [OUTPUT_NAME],
        "train_cutoff": str(trainer.cutoff_),
        "horizon_days": trainer.horizon_days,
        "half_life_days": data.HALF_LIFE_DAYS,
        "view_weight": data.VIEW_WEIGHT,
        "popularity_windows_days": list(data.POPULARITY_WINDOWS_DAYS),
        "n_train_rows": trainer.n_train_rows_,
        "n_validation_rows": trainer.n_validation_rows_,
        "parity_max_abs_diff": parity,
        "training": trainer.get_params() | {"hidden_units": list(trainer.hidden_units), "epochs_run": trainer.n_epochs_},
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "tf2onnx": tf2onnx.__version__, "opset": OPSET},
    }
    report = {"n_products": len(trainer.vocabulary_), "n_train_rows": trainer.n_train_rows_, "parity_max_abs_diff": parity}
    model_dir = registry.save_model(models_dir, name, onnx_bytes, metadata, report)
    return RecommenderResult(
        model_dir=model_dir,
        version=model_dir.name,
        n_products=len(trainer.vocabulary_),
        n_train_rows=trainer.n_train_rows_,
        n_validation_rows=trainer.n_validation_rows_,
        n_epochs=trainer.n_epochs_,
        parity_max_abs_diff=parity,
        seconds=time.perf_counter() - started,
    )


def _as_date(value: date | datetime | str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])
