"""``recommend_products(customer_id, k)``: product recommendations as a DuckDB Arrow UDF.

For each customer the function reads the purchase and browsing history
(``mkt.product_history_at`` at the day after the latest sale), runs the
ONNX recommender once per batch, and returns the ``k`` best products as
``LIST(STRUCT(product_id, score, reason))``:

* products matching ``mkt.non_product_codes`` are never returned, and by
  default neither are products the customer bought in the last
  ``exclude_recent_days`` days;
* ``score`` is the model's probability that the product is among the
  customer's next purchases (the ranker also reads the products' number of
  buyers in the last 30 and 90 days, as of the latest sale), and ``reason`` is ``bought_before`` (bought
  earlier than the exclusion window) or ``similar_to_history``;
* a customer without a usable history (unknown id, or only products outside
  the model's vocabulary) gets the most popular products of their segment
  (``mkt.customer_segments``) in the last 90 days, with ``reason``
  ``popular_in_segment`` and ``score`` the product's number of buyers
  divided by that of the segment's most popular product.

The first call copies the cleaned sale lines into a temporary table of its
own cursor and reads the cutoff and popularity from it. Later calls reuse
them while the order lines, customer profiles, load log and non-product
codes stay unchanged, and read only the histories of their customers. The
ONNX model multiplies a dense customers x products history matrix by a
products x products constant: with the 3,342 products of a recommender
trained on Online Retail, a batch of about 2,000 customers took 1.4 to
2.4 s on 2 cores. Importing this module never imports TensorFlow.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.types as pat

from duckmkt.errors import FeatureError, ModelError
from duckmkt.i18n import _
from duckmkt.recommend import DEFAULT_MODEL_NAME, data
from duckmkt.recommend.metrics import top_k
from duckmkt.registry import load_metadata, promoted_version, verify_model
from duckmkt.sql_views import macros_take_parameter

logger = logging.getLogger(__name__)

FUNCTION_NAME = "recommend_products"
DEFAULT_K = 10
MAX_K = 1000

RECOMMENDATION_TYPE = duckdb.list_type(
    duckdb.struct_type(
        {"product_id": duckdb.sqltypes.VARCHAR, "score": duckdb.sqltypes.DOUBLE, "reason": duckdb.sqltypes.VARCHAR}
    )
)
_ITEM_ARROW_TYPE = pa.struct([pa.field("product_id", pa.string()), pa.field("score", pa.float64()), pa.field("reason", pa.string())])


# Rows of the popularity list of each segment beyond k, which leave room for
# the products a customer bought recently.
FALLBACK_EXTRA_ROWS = 200


@dataclass
class _ServingData:
    """Data that every batch reads besides the customers' histories, as of one ``data.source_fingerprint``."""

    fingerprint: tuple
    # Day after the latest sale, or None without sales.
    cutoff: datetime | None
    # Temporary table of sale lines (``data.stage_sale_lines``), or None when
    # the database's macros predate the staged_lines argument.
    staged_lines: str | None
    # Products x popularity windows, the ranker's ``popularity`` input.
    popularity: np.ndarray | None = None
    # Vocabulary columns that match a non-product code.
    blocked: np.ndarray | None = None
    # (product_id, relative popularity) of the top MAX_K + FALLBACK_EXTRA_ROWS
    # products of each segment and of 'all', read on the first fallback.
    popular: dict[str, list[tuple[str, float]]] | None = None


@dataclass
class Recommender:
    """A verified ONNX recommender bound to the connection whose history it reads.

    Cleaning the order lines was most of the cost of a call, so the first
    call copies the sale lines into a temporary table of ``cursor`` and
    reads the cutoff, popularity and non-product codes once. Later calls
    reuse them until ``data.source_fingerprint`` changes, that is until a
    row of the order lines, customer profiles, load log or non-product
    codes, or a ``mkt`` view or macro, changes. Each call still reads the
    histories of its customers from that table and their browsing events
    from ``mkt.stg_events``.

    NOTE: the copy lives as long as the recommender, and ``keep_alive``
    keeps every registered UDF (with its recommender) for the life of the
    process, so each registration keeps its own copy of the sale lines.
    """

    model_dir: Path
    session: ort.InferenceSession
    metadata: dict
    cursor: duckdb.DuckDBPyConnection
    exclude_recent_days: int = data.EXCLUDE_RECENT_DAYS
    # Whether the database's macros take staged_lines (see data.STAGED_LINE_MACROS).
    stages_lines: bool = True
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _serving: _ServingData | None = field(default=None, repr=False)

    @classmethod
    def load(cls, model_dir: str | Path, con: duckdb.DuckDBPyConnection, *, exclude_recent_days: int = data.EXCLUDE_RECENT_DAYS) -> Recommender:
        """Verify the model in ``model_dir`` and open it with ONNX Runtime."""
        model_dir = Path(model_dir)
        verify_model(model_dir)
        metadata = load_metadata(model_dir)
        if metadata.get("kind") != "recommender":
            raise ModelError(
                _("Model {path} is not a recommender; train one with 'duckmkt train-recommender DB'.").format(path=model_dir)
            )
        if exclude_recent_days < 0:
            raise FeatureError(
                _("exclude_recent_days is {days}; it must be 0 (exclude nothing) or more days.").format(days=exclude_recent_days)
            )
        session = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
        stages_lines = macros_take_parameter(con, data.STAGED_LINE_MACROS, "staged_lines")
        if not stages_lines:
            logger.warning(
                _("The recommendation macros of this database predate cached order lines; recommend_products cleans the "
                  "lines again in every call. Open the database once without read_only (any duckmkt command does) to update them.")
            )
        return cls(
            model_dir=model_dir,
            session=session,
            metadata=metadata,
            cursor=con.cursor(),
            exclude_recent_days=exclude_recent_days,
            stages_lines=stages_lines,
        )

    @property
    def vocabulary(self) -> list[str]:
        return list(self.metadata["feature_names"])

    @property
    def version(self) -> str:
        return str(self.metadata["version"])

    def recommend_arrow(self, customer_ids: pa.Array | pa.ChunkedArray, k: pa.Array | pa.ChunkedArray | None = None) -> pa.Array:
        """Return one list of recommendations per customer id; a NULL id gives NULL."""
        customer_ids = _combine(customer_ids)
        if pat.is_null(customer_ids.type):
            # An untyped NULL, as in recommend_products(NULL, 10): NULL in, NULL out.
            return pa.array([None] * len(customer_ids), type=pa.list_(_ITEM_ARROW_TYPE))
        if not (pat.is_string(customer_ids.type) or pat.is_large_string(customer_ids.type) or pat.is_integer(customer_ids.type)):
            raise FeatureError(
                _("recommend_products expects a customer id (VARCHAR) as its first argument; it got {type}.").format(type=customer_ids.type)
            )
        customer_ids = customer_ids.cast(pa.string())
        counts = _k_values(k, len(customer_ids))
        ids = customer_ids.to_pylist()
        known = sorted({customer_id for customer_id in ids if customer_id is not None})
        if not known:
            return pa.array([None] * len(ids), type=pa.list_(_ITEM_ARROW_TYPE))

        with self._lock:
            ranked = self._rank(known, int(counts.max(initial=0)))
        output = [
            None if customer_id is None else ranked[customer_id][: int(count)]
            for customer_id, count in zip(ids, counts)
        ]
        return pa.array(output, type=pa.list_(_ITEM_ARROW_TYPE))

    def _serving_data(self) -> _ServingData:
        """Return the cached serving data, read again when the source tables changed since the last call."""
        # The fingerprint is taken before the data it stands for is read, so
        # a change made in between makes the next call read them again.
        fingerprint = data.source_fingerprint(self.cursor)
        if self._serving is not None and self._serving.fingerprint == fingerprint:
            return self._serving

        staged_lines = data.stage_sale_lines(self.cursor) if self.stages_lines else None
        serving = _ServingData(fingerprint=fingerprint, cutoff=data.latest_cutoff(self.cursor, staged_lines), staged_lines=staged_lines)
        if serving.cutoff is not None:
            windows = tuple(self.metadata.get("popularity_windows_days", data.POPULARITY_WINDOWS_DAYS))
            serving.popularity = data.read_popularity(self.cursor, serving.cutoff, self.vocabulary, windows, staged_lines=staged_lines)
            serving.blocked = self._non_product_mask()
        self._serving = serving
        return serving

    def _rank(self, customer_ids: list[str], k: int) -> dict[str, list[dict]]:
        """Return the best ``k`` recommendations of each customer id."""
        if k == 0:
            return {customer_id: [] for customer_id in customer_ids}
        serving = self._serving_data()
        if serving.cutoff is None:
            return {customer_id: [] for customer_id in customer_ids}

        vocabulary = self.vocabulary
        rows = data.read_history(
            self.cursor,
            serving.cutoff,
            vocabulary,
            customer_ids=customer_ids,
            exclude_recent_days=self.exclude_recent_days,
            staged_lines=serving.staged_lines,
        )
        has_history = np.asarray(rows.history.sum(axis=1)).ravel() > 0

        results: dict[str, list[dict]] = {}
        if has_history.any():
            mask = rows.recent.toarray() > 0
            mask[:, serving.blocked] = True
            scores = self._score(rows.select(has_history), serving.popularity)
            known_mask = mask[has_history]
            ranked = top_k(scores, k, known_mask)
            bought = rows.bought[has_history]
            for row, customer_index in enumerate(np.flatnonzero(has_history)):
                bought_columns = set(bought.indices[bought.indptr[row] : bought.indptr[row + 1]].tolist())
                results[customer_ids[customer_index]] = [
                    {
                        "product_id": vocabulary[column],
                        "score": float(scores[row, column]),
                        "reason": "bought_before" if column in bought_columns else "similar_to_history",
                    }
                    for column in ranked[row]
                    if not known_mask[row, column]
                ]
        if has_history.all():
            return results

        segments = self._segments(customer_ids, serving.staged_lines)
        popular = self._popular_products(serving)
        for row, customer_id in enumerate(customer_ids):
            if customer_id in results:
                continue
            segment = segments.get(customer_id, "all")
            candidates = popular.get(segment, [])[: k + FALLBACK_EXTRA_ROWS] + popular.get("all", [])[: k + FALLBACK_EXTRA_ROWS]
            recent = rows.recent.indices[rows.recent.indptr[row] : rows.recent.indptr[row + 1]]
            excluded = {vocabulary[column] for column in recent} | rows.recent_outside.get(customer_id, set())
            results[customer_id] = _fallback(candidates, excluded, k)
        return results

    def _score(self, rows: data.HistoryRows, popularity: np.ndarray) -> np.ndarray:
        """Return the model's probabilities [customers, products] for ``rows``."""
        available = rows.model_inputs()
        available["popularity"] = popularity
        # A recommender saved before the ranker inputs existed takes only ``history``.
        feed = {graph_input.name: available[graph_input.name] for graph_input in self.session.get_inputs()}
        return self.session.run(["scores"], feed)[0]

    def _segments(self, customer_ids: list[str], staged_lines: str | None) -> dict[str, str]:
        """Return the segment of each of ``customer_ids`` found in ``mkt.customer_segments``."""
        source = "mkt.customer_segments" if staged_lines is None else f"mkt.customer_segments_from('{staged_lines}')"
        rows = self.cursor.execute(
            f"select customer_id, segment from {source} where list_contains($customer_ids::varchar[], customer_id)",
            {"customer_ids": customer_ids},
        ).fetchall()
        return dict(rows)

    def _non_product_mask(self) -> np.ndarray:
        """Return the vocabulary columns that now match a non-product code (codes may be added after training)."""
        vocabulary = self.vocabulary
        rows = self.cursor.execute(
            """
            select vocabulary.product_id
            from unnest($vocabulary::varchar[]) as vocabulary(product_id)
            where exists (
                select 1 from mkt.non_product_codes as codes
                where regexp_full_match(upper(vocabulary.product_id), upper(codes.pattern))
            )
            """,
            {"vocabulary": vocabulary},
        ).fetchall()
        index = {product_id: column for column, product_id in enumerate(vocabulary)}
        return np.array([index[row[0]] for row in rows], dtype=np.int64)

    def _popular_products(self, serving: _ServingData) -> dict[str, list[tuple[str, float]]]:
        """Return (product_id, relative popularity) of the top products of each segment and of 'all', read once per ``serving``."""
        if serving.popular is not None:
            return serving.popular
        staged = "" if serving.staged_lines is None else f", staged_lines := '{serving.staged_lines}'"
        rows = self.cursor.execute(
            f"""
            select segment, product_id, popularity / max(popularity) over (partition by segment) as score
            from mkt.segment_popular_products_at($cutoff, $window{staged})
            where popularity_rank <= $limit
            order by segment, popularity_rank
            """,
            {"cutoff": str(serving.cutoff), "window": data.POPULARITY_WINDOW_DAYS, "limit": MAX_K + FALLBACK_EXTRA_ROWS},
        ).fetchall()
        popular: dict[str, list[tuple[str, float]]] = {}
        for segment, product_id, score in rows:
            popular.setdefault(segment, []).append((product_id, float(score)))
        serving.popular = popular
        return popular


def _fallback(candidates: list[tuple[str, float]], excluded: set[str], k: int) -> list[dict]:
    chosen: list[dict] = []
    seen: set[str] = set()
    for product_id, score in candidates:
        if len(chosen) >= k:
            break
        if product_id in excluded or product_id in seen:
            continue
        seen.add(product_id)
        chosen.append({"product_id": product_id, "score": score, "reason": "popular_in_segment"})
    return chosen


def _combine(values):
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _k_values(k, n_rows: int) -> np.ndarray:
    """Return k for every row; NULL or a missing argument means DEFAULT_K."""
    if k is None:
        return np.full(n_rows, DEFAULT_K, dtype=np.int64)
    k = _combine(k)
    if pat.is_null(k.type):
        # A literal NULL arrives as a column of type null.
        return np.full(n_rows, DEFAULT_K, dtype=np.int64)
    if not pat.is_integer(k.type):
        raise FeatureError(_("recommend_products: k has type {type}; pass an integer number of products, for example 10.").format(type=k.type))
    values = np.array([DEFAULT_K if value is None else value for value in k.to_pylist()], dtype=np.int64)
    if n_rows and (values.min() < 0 or values.max() > MAX_K):
        raise FeatureError(
            _("recommend_products: k must be between 0 and {maximum}; it is {value}.").format(
                maximum=MAX_K, value=int(values.min() if values.min() < 0 else values.max())
            )
        )
    return values


def resolve_recommender_dir(
    model: str | Path | None = None,
    *,
    models_dir: str | Path = "models",
    name: str = DEFAULT_MODEL_NAME,
    con: duckdb.DuckDBPyConnection | None = None,
) -> Path | None:
    """Return the recommender folder to use, or None when ``model`` is None and no version exists.

    As for ``score_customer``, the version of ``name`` promoted in the
    ``mkt.models`` table of ``con`` comes first, then the newest version
    under ``models_dir``.
    """
    from duckmkt.scoring import resolve_model_dir

    if model is None and con is not None:
        model = promoted_version(con, name)
    if model is None and not any((Path(models_dir) / name).glob("[!.]*/metadata.json")):
        return None
    return resolve_model_dir(model, models_dir=models_dir, name=name, con=con)


def register_recommender(
    con: duckdb.DuckDBPyConnection,
    model: str | Path | None = None,
    *,
    models_dir: str | Path = "models",
    name: str = DEFAULT_MODEL_NAME,
    exclude_recent_days: int = data.EXCLUDE_RECENT_DAYS,
) -> Recommender | None:
    """Register ``recommend_products`` on ``con``; return the recommender, or None when none is trained.

    ``model`` may be a model folder or a version of ``name`` under ``models_dir``.
    Without it, the version promoted in ``mkt.models`` is used, else the newest.
    """
    model_dir = resolve_recommender_dir(model, models_dir=models_dir, name=name, con=con)
    if model_dir is None:
        logger.info("No recommender under %s; recommend_products is not registered", Path(models_dir) / name)
        return None
    recommender = Recommender.load(model_dir, con, exclude_recent_days=exclude_recent_days)

    def recommend(customer_ids, k=None):
        return recommender.recommend_arrow(customer_ids, k)

    try:
        con.remove_function(FUNCTION_NAME)
    except duckdb.InvalidInputException:
        pass
    # Imported here: duckmkt.scoring imports this module.
    from duckmkt.scoring import keep_alive

    keep_alive(recommend)
    con.create_function(
        FUNCTION_NAME,
        recommend,
        parameters=None,
        return_type=RECOMMENDATION_TYPE,
        type="arrow",
        null_handling="special",
        side_effects=False,
    )
    logger.info("Registered %s with recommender version %s", FUNCTION_NAME, recommender.version)
    return recommender
