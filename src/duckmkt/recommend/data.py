"""Matrices for the recommender, read from ``mkt.product_history_at``.

Rows are customers and columns the products of a fixed vocabulary. History
weights decay with age (see the macro); browsing events count with
``VIEW_WEIGHT`` times the weight of a purchase. Nothing here imports
TensorFlow, so scoring can use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import sparse

HALF_LIFE_DAYS = 90.0
# A view or add-to-cart counts this much of a purchase of the same age.
VIEW_WEIGHT = 0.25
# Default window in which bought products are not recommended again.
EXCLUDE_RECENT_DAYS = 30
POPULARITY_WINDOW_DAYS = 90
# Windows of the recent-popularity inputs of the ranker, in days.
POPULARITY_WINDOWS_DAYS = (30, 90)

# The copy of the sale lines that recommend_products reads instead of the
# staging view, and the macros that take it as their staged_lines argument.
STAGED_LINES_TABLE = "duckmkt_recommend_lines"
STAGED_LINE_COLUMNS = ("customer_id", "order_id", "ordered_at", "product_id", "country", "line_status")
STAGED_LINE_MACROS = ("product_history_at", "segment_popular_products_at", "customer_segments_from")

# Tables that the staged lines, the cutoff, the popularity, the segments and
# the non-product mask of recommend_products are derived from, through the
# staging views. raw.events is not among them because histories read the
# browsing events in every call.
SOURCE_TABLES = ("raw.order_lines", "raw.customers", "raw.load_log", "mkt.non_product_codes")


@dataclass
class HistoryRows:
    """Histories of some customers at one cutoff, aligned with a vocabulary."""

    customer_ids: list[str]
    # Decayed purchase plus browsing weight, customers x products.
    history: sparse.csr_matrix
    # 1 where the customer bought the product in the exclusion window.
    recent: sparse.csr_matrix
    # 1 where the customer ever bought the product before the cutoff.
    bought: sparse.csr_matrix
    # Number of orders containing the product.
    order_count: sparse.csr_matrix
    # 1 + days from the latest purchase to the cutoff, 0 where never bought
    # (the offset keeps a purchase on the cutoff day in the sparse matrix).
    purchase_age: sparse.csr_matrix
    # Products outside the vocabulary that each customer bought in the
    # exclusion window; the popular-products fallback must skip them too.
    recent_outside: dict[str, set[str]] = field(default_factory=dict)

    def model_inputs(self, rows: np.ndarray | slice = slice(None)) -> dict[str, np.ndarray]:
        """Return the dense per-customer inputs of the ranker (``history``, ``order_count``, ``days_since_purchase``)."""
        age = self.purchase_age[rows].toarray().astype(np.float32)
        return {
            "history": self.history[rows].toarray().astype(np.float32),
            "order_count": self.order_count[rows].toarray().astype(np.float32),
            "days_since_purchase": np.maximum(age - 1.0, 0.0),
        }

    def select(self, keep: np.ndarray) -> HistoryRows:
        """Return the rows where the boolean ``keep`` is true."""
        return HistoryRows(
            customer_ids=[customer_id for customer_id, kept in zip(self.customer_ids, keep) if kept],
            history=self.history[keep],
            recent=self.recent[keep],
            bought=self.bought[keep],
            order_count=self.order_count[keep],
            purchase_age=self.purchase_age[keep],
            recent_outside=self.recent_outside,
        )


def build_vocabulary(con: duckdb.DuckDBPyConnection, cutoff: date | datetime | str, min_customers: int = 3) -> list[str]:
    """Return the product ids bought by at least ``min_customers`` customers before ``cutoff``, sorted."""
    rows = con.execute(
        """
        select product_id
        from mkt.int_sales
        where ordered_at < $cutoff::timestamp
        group by product_id
        having count(distinct customer_id) >= $min_customers
        order by product_id
        """,
        {"cutoff": str(cutoff), "min_customers": min_customers},
    ).fetchall()
    return [row[0] for row in rows]


def stage_sale_lines(con: duckdb.DuckDBPyConnection) -> str:
    """Copy the sale lines of ``mkt.stg_order_lines`` into a temporary table of ``con`` and return the table name.

    The staging view cleans every raw line again in each query that reads
    it, which costs about a second on Online Retail. The macros of
    ``STAGED_LINE_MACROS`` and the functions here with a ``staged_lines``
    argument read the copy instead.
    """
    con.execute(
        f"""
        create or replace temp table {STAGED_LINES_TABLE} as
        select {", ".join(STAGED_LINE_COLUMNS)}
        from mkt.stg_order_lines
        where line_status = 'sale'
        """
    )
    return STAGED_LINES_TABLE


def source_fingerprint(con: duckdb.DuckDBPyConnection) -> tuple:
    """Return a value that changes when a row of ``SOURCE_TABLES`` or a ``mkt`` view or macro changes.

    It contains the row count and the sum of the 64-bit row hashes of each
    table, so an insert, update or delete changes it unless hashes collide.
    Hashing every row took about 0.05 s for the 541,909 raw lines of Online
    Retail on 2 cores, against about 1 s to clean them.
    """
    existing = {
        f"{schema}.{table}"
        for schema, table in con.execute(
            "select schema_name, table_name from duckdb_tables() where not temporary and database_name = current_database()"
        ).fetchall()
    }
    parts = [
        f"select '{table}', count(*), sum(hash(source_rows)::hugeint) from {table} as source_rows"
        for table in SOURCE_TABLES
        if table in existing
    ]
    parts.append(
        "select 'views', count(*), sum(hash(sql)::hugeint) from duckdb_views()"
        " where schema_name = 'mkt' and database_name = current_database()"
    )
    parts.append(
        "select 'macros', count(*), sum(hash(macro_definition, parameters)::hugeint) from duckdb_functions()"
        " where schema_name = 'mkt' and database_name = current_database() and function_type = 'table_macro'"
    )
    # union all does not keep the order of its parts.
    rows = con.execute(" union all ".join(parts)).fetchall()
    return tuple(sorted(rows, key=lambda row: row[0]))


def sales_relation(staged_lines: str | None = None) -> str:
    """Return the SQL of the sale lines to read: ``mkt.int_sales``, or the sale lines of the table ``staged_lines``."""
    if staged_lines is None:
        return "mkt.int_sales"
    return f"(select * from {staged_lines} where line_status = 'sale')"


def latest_cutoff(con: duckdb.DuckDBPyConnection, staged_lines: str | None = None) -> datetime | None:
    """Return the day after the latest sale, the cutoff of ``mkt.customer_features``; None without sales."""
    latest = con.execute(f"select max(ordered_at)::date + interval 1 day from {sales_relation(staged_lines)}").fetchall()[0][0]
    return latest


def read_history(
    con: duckdb.DuckDBPyConnection,
    cutoff: date | datetime | str,
    vocabulary: list[str],
    *,
    customer_ids: list[str] | None = None,
    half_life_days: float = HALF_LIFE_DAYS,
    exclude_recent_days: int = EXCLUDE_RECENT_DAYS,
    staged_lines: str | None = None,
) -> HistoryRows:
    """Return the history of every customer (or of ``customer_ids``) at ``cutoff``.

    With ``customer_ids``, the rows follow its order, and a customer without
    a history gets an empty row. Products outside ``vocabulary`` are ignored.
    Sales come from the table ``staged_lines`` (see ``stage_sale_lines``)
    when given.
    """
    params = {"cutoff": str(cutoff), "half_life": float(half_life_days), "recent": int(exclude_recent_days)}
    restrict = ""
    if customer_ids is not None:
        # DuckDB pushes list_contains down into the macro's scan, which it
        # does not do for "in (select unnest(...))".
        restrict = "where list_contains($customer_ids::varchar[], customer_id)"
        params["customer_ids"] = list(customer_ids)
    # Without a table the call leaves staged_lines out, so a database whose
    # macro predates the argument still works.
    staged = f", staged_lines := '{staged_lines}'" if staged_lines else ""
    table = con.sql(
        f"""
        select
            customer_id,
            product_id,
            purchase_weight + {VIEW_WEIGHT!r} * view_weight as weight,
            coalesce(last_bought_at >= $cutoff::timestamp - to_days($recent::integer), false) as is_recent,
            last_bought_at is not null as is_bought,
            order_count,
            coalesce((epoch($cutoff::timestamp) - epoch(last_bought_at)) / 86400.0 + 1.0, 0.0) as purchase_age,
        from mkt.product_history_at($cutoff, $half_life{staged})
        {restrict}
        """,
        params=params,
    ).to_arrow_table()

    if customer_ids is None:
        customer_ids = sorted(set(table.column("customer_id").to_pylist()))
    return _to_rows(table, customer_ids, vocabulary)


def _to_rows(table: pa.Table, customer_ids: list[str], vocabulary: list[str]) -> HistoryRows:
    shape = (len(customer_ids), len(vocabulary))
    rows = pc.index_in(table.column("customer_id"), value_set=pa.array(customer_ids, type=pa.string()))
    columns = pc.index_in(table.column("product_id"), value_set=pa.array(vocabulary, type=pa.string()))
    keep = pc.and_(pc.is_valid(rows), pc.is_valid(columns))
    outside = pc.and_(pc.and_(pc.is_valid(rows), pc.is_null(columns)), table.column("is_recent"))
    recent_outside: dict[str, set[str]] = {}
    for row in table.filter(outside).select(["customer_id", "product_id"]).to_pylist():
        recent_outside.setdefault(row["customer_id"], set()).add(row["product_id"])
    table = table.filter(keep)
    row_index = pc.filter(rows, keep).to_numpy().astype(np.int64)
    column_index = pc.filter(columns, keep).to_numpy().astype(np.int64)

    def matrix(values: np.ndarray) -> sparse.csr_matrix:
        built = sparse.csr_matrix((values.astype(np.float32), (row_index, column_index)), shape=shape)
        built.eliminate_zeros()
        return built

    return HistoryRows(
        customer_ids=list(customer_ids),
        history=matrix(table.column("weight").to_numpy()),
        recent=matrix(table.column("is_recent").to_numpy(zero_copy_only=False).astype(np.float32)),
        bought=matrix(table.column("is_bought").to_numpy(zero_copy_only=False).astype(np.float32)),
        order_count=matrix(table.column("order_count").to_numpy()),
        purchase_age=matrix(table.column("purchase_age").to_numpy()),
        recent_outside=recent_outside,
    )


def read_targets(
    con: duckdb.DuckDBPyConnection,
    cutoff: date | datetime | str,
    horizon_days: int,
    vocabulary: list[str],
    customer_ids: list[str],
) -> sparse.csr_matrix:
    """Return 1 where a customer bought a vocabulary product in [cutoff, cutoff + horizon_days)."""
    table = con.sql(
        """
        select distinct customer_id, product_id
        from mkt.int_sales
        where ordered_at >= $cutoff::timestamp
          and ordered_at < $cutoff::timestamp + to_days($horizon::integer)
        """,
        params={"cutoff": str(cutoff), "horizon": int(horizon_days)},
    ).to_arrow_table()
    shape = (len(customer_ids), len(vocabulary))
    rows = pc.index_in(table.column("customer_id"), value_set=pa.array(customer_ids, type=pa.string()))
    columns = pc.index_in(table.column("product_id"), value_set=pa.array(vocabulary, type=pa.string()))
    keep = pc.and_(pc.is_valid(rows), pc.is_valid(columns))
    return sparse.csr_matrix(
        (
            np.ones(int(pc.sum(keep.cast(pa.int64())).as_py() or 0), dtype=np.float32),
            (pc.filter(rows, keep).to_numpy().astype(np.int64), pc.filter(columns, keep).to_numpy().astype(np.int64)),
        ),
        shape=shape,
    )


def read_popularity(
    con: duckdb.DuckDBPyConnection,
    cutoff: date | datetime | str,
    vocabulary: list[str],
    windows: tuple[int, ...] = POPULARITY_WINDOWS_DAYS,
    staged_lines: str | None = None,
) -> np.ndarray:
    """Return products x windows: distinct customers who bought each product in the ``windows`` days before ``cutoff``.

    Sales come from the table ``staged_lines`` (see ``stage_sale_lines``) when given.
    """
    counts = ", ".join(
        f"count(distinct customer_id) filter (where ordered_at >= $cutoff::timestamp - to_days({int(days)})) as last_{int(days)}"
        for days in windows
    )
    table = con.sql(
        f"""
        select product_id, {counts}
        from {sales_relation(staged_lines)}
        where ordered_at < $cutoff::timestamp
          and ordered_at >= $cutoff::timestamp - to_days($longest::integer)
        group by product_id
        """,
        params={"cutoff": str(cutoff), "longest": int(max(windows))},
    ).to_arrow_table()
    columns = pc.index_in(table.column("product_id"), value_set=pa.array(vocabulary, type=pa.string()))
    keep = pc.is_valid(columns)
    popularity = np.zeros((len(vocabulary), len(windows)), dtype=np.float32)
    index = pc.filter(columns, keep).to_numpy().astype(np.int64)
    for position, days in enumerate(windows):
        popularity[index, position] = pc.filter(table.column(f"last_{int(days)}"), keep).to_numpy()
    return popularity


def training_cutoffs(first: date, last: date, step_days: int) -> list[date]:
    """Return the cutoffs from ``first`` to ``last`` (inclusive) every ``step_days`` days."""
    cutoffs = []
    current = first
    while current <= last:
        cutoffs.append(current)
        current += timedelta(days=step_days)
    return cutoffs
