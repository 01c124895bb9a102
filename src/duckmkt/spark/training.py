"""Train the customer model on features and labels computed by Spark.

Spark computes the customer-level tables the trainer reads: features, labels
and purchase days at every training and validation cutoff, one row per
customer and cutoff, plus each customer's spend per sale day in the baseline
window before the validation cutoff. They are collected to the driver as
Arrow and put into an in-memory DuckDB database whose macros
``mkt.customer_features_at``, ``mkt.customer_labels_at`` and
``mkt.purchase_days_at`` read them, and ``duckmkt.training.train`` runs on
that database unchanged.

NOTE: this works while the rows of every training cutoff fit in the
driver's memory. With 29 float64 features plus keys and labels, an
estimate is 300 bytes per customer and cutoff, so 3 GB for 10 million
customers. Past that,
sample customers in Spark before collecting (the model needs thousands of
rows, not millions) or train with a distributed framework. The trainer must
not read any SQL object besides the staged ones: a new one fails with a
DuckDB catalog error naming it, and then has to be staged here too.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta

import duckdb
import pyarrow as pa

from duckmkt.spark.catalog import SparkCatalog
from duckmkt.training import dataset

logger = logging.getLogger(__name__)

# The trainer reads mkt.int_orders only for these columns: the sale-day range
# and the spend per customer and day in the baseline window.
_ORDERS_DDL = """
create table mkt.int_orders (
    customer_id varchar,
    order_id varchar,
    ordered_at timestamp,
    order_value double
)
"""

_MACROS = (
    """
    create macro mkt.customer_features_at(cutoff) as table
    select * exclude (staged_cutoff) from staged_features where staged_cutoff = cutoff::date
    """,
    """
    create macro mkt.customer_labels_at(cutoff, horizon_days, churn_horizon_days) as table
    select * exclude (staged_cutoff) from staged_labels where staged_cutoff = cutoff::date
    """,
    """
    create macro mkt.purchase_days_at(cutoff, horizon_days) as table
    select * exclude (staged_cutoff) from staged_purchase_days where staged_cutoff = cutoff::date
    """,
)


def _collect(frame) -> pa.Table:
    return frame.toArrow()


def stage_training_database(
    catalog: SparkCatalog,
    *,
    horizon_days: int | None = None,
    churn_horizon_days: int | None = None,
    train_cutoff: date | str | None = None,
    validation_cutoff: date | str | None = None,
    n_train_cutoffs: int = 1,
    cutoff_step_days: int | None = None,
) -> tuple[duckdb.DuckDBPyConnection, dataset.TrainingWindow]:
    """Compute the training tables on Spark and return an in-memory DuckDB database holding them, with the window used."""
    con = duckdb.connect()
    con.execute("create schema mkt")
    con.execute(_ORDERS_DDL)

    # Two rows at the first and the latest sale day let resolve_window derive
    # the default cutoffs from the same dates as on DuckDB.
    first_day, last_day = catalog.sale_day_range()
    con.executemany(
        "insert into mkt.int_orders values (null, null, ?, 0)",
        [[datetime.combine(first_day, time())], [datetime.combine(last_day, time())]],
    )
    window = dataset.resolve_window(
        con,
        horizon_days=horizon_days,
        churn_horizon_days=churn_horizon_days,
        train_cutoff=train_cutoff,
        validation_cutoff=validation_cutoff,
    )
    step_days = window.horizon_days if cutoff_step_days is None else cutoff_step_days
    cutoffs = (*dataset.training_cutoffs(window, n_train_cutoffs, step_days), window.validation_cutoff)

    parts: dict[str, list[pa.Table]] = {"staged_features": [], "staged_labels": [], "staged_purchase_days": []}
    for cutoff in cutoffs:
        frames = {
            "staged_features": catalog.customer_features_at(cutoff),
            "staged_labels": catalog.customer_labels_at(cutoff, window.horizon_days, window.churn_horizon_days),
            "staged_purchase_days": catalog.dataframe("mkt.purchase_days_at", cutoff, window.horizon_days),
        }
        for table, frame in frames.items():
            rows = _collect(frame)
            parts[table].append(rows.append_column("staged_cutoff", pa.array([cutoff] * rows.num_rows, pa.date32())))
        logger.info("Collected the Spark training rows at %s", cutoff)

    for table, tables in parts.items():
        con.register("staged_rows", pa.concat_tables(tables))
        con.execute(f"create table {table} as select * from staged_rows")
        con.unregister("staged_rows")
    for macro in _MACROS:
        con.execute(macro)

    _stage_baseline_orders(con, catalog, window)
    return con, window


def _stage_baseline_orders(con: duckdb.DuckDBPyConnection, catalog: SparkCatalog, window: dataset.TrainingWindow) -> None:
    """Insert each customer's spend per sale day in [validation_cutoff - horizon_days, validation_cutoff)."""
    start = window.validation_cutoff - timedelta(days=window.horizon_days)
    orders = catalog.view("mkt.int_orders")
    frame = catalog.session.sql(
        f"""
        select customer_id, cast(null as string) as order_id,
            cast(cast(ordered_at as date) as timestamp_ntz) as ordered_at,
            cast(sum(order_value) as double) as order_value
        from {orders}
        where ordered_at >= cast(date'{start.isoformat()}' as timestamp_ntz)
            and ordered_at < cast(date'{window.validation_cutoff.isoformat()}' as timestamp_ntz)
        group by customer_id, cast(ordered_at as date)
        """
    )
    con.register("staged_rows", _collect(frame))
    con.execute("insert into mkt.int_orders select * from staged_rows")
    con.unregister("staged_rows")


def train_from_spark(
    catalog: SparkCatalog,
    *,
    models_dir="models",
    name: str = "customer",
    horizon_days: int | None = None,
    churn_horizon_days: int | None = None,
    train_cutoff: date | str | None = None,
    validation_cutoff: date | str | None = None,
    n_train_cutoffs: int = 1,
    cutoff_step_days: int | None = None,
    **train_params,
):
    """Train and save the customer model from Spark's tables; return ``duckmkt.training.TrainingResult``."""
    from duckmkt.training import train

    con, window = stage_training_database(
        catalog,
        horizon_days=horizon_days,
        churn_horizon_days=churn_horizon_days,
        train_cutoff=train_cutoff,
        validation_cutoff=validation_cutoff,
        n_train_cutoffs=n_train_cutoffs,
        cutoff_step_days=cutoff_step_days,
    )
    try:
        return train(
            con,
            models_dir=models_dir,
            name=name,
            horizon_days=window.horizon_days,
            churn_horizon_days=window.churn_horizon_days,
            train_cutoff=window.train_cutoff,
            validation_cutoff=window.validation_cutoff,
            n_train_cutoffs=n_train_cutoffs,
            cutoff_step_days=cutoff_step_days,
            # The staged database contains finished rows, not order lines to clean.
            cache_order_lines=False,
            **train_params,
        )
    finally:
        con.close()
