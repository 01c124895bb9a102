"""SQLAlchemy engines for duckmkt databases, the route Superset takes.

``create_engine`` returns an engine of the ``duckdb`` dialect (the
duckdb-engine package) whose every new DBAPI connection gets
``score_customer`` and the other functions of ``duckmkt.scoring.register``,
through a ``connect`` event listener. Superset opens a new connection per
query worker, so registering once per engine would not be enough.

Example::

    engine = duckmkt.sqlalchemy.create_engine("shop.duckdb", read_only=True)
    with engine.connect() as connection:
        connection.exec_driver_sql("select (score_customer(f)).strategy from mkt.customer_features f limit 5")

In Superset, ``register_on_connect(sqlalchemy.pool.Pool, ...)`` in
``superset_config.py`` attaches the listener to every engine; see docs/clients.md.
"""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy
from sqlalchemy import event

logger = logging.getLogger(__name__)


def register_connection(dbapi_connection, connection_record, model=None, *, models_dir=Path("models"), name="customer") -> None:
    """Register the duckmkt scoring functions on one new duckdb-engine DBAPI connection."""
    from duckmkt.scoring import register

    # duckdb-engine wraps the DuckDB connection in a DBAPI wrapper whose
    # cursors return no result objects. Its duplicate() is forwarded to the
    # DuckDB connection and returns a plain connection to the same database.
    # Functions registered on it are visible to every connection of that
    # database (checked with DuckDB 2.0.1). The duplicate must live as long
    # as the pooled connection: the strategy evaluator keeps a cursor of it,
    # and DuckDB closes a connection's cursors when it is garbage collected.
    duplicate = dbapi_connection.duplicate()
    connection_record.info["duckmkt_connection"] = duplicate
    register(duplicate, model, models_dir=models_dir, name=name)
    logger.debug("Registered duckmkt functions on a new SQLAlchemy connection")


def register_on_connect(
    target,
    model: str | Path | None = None,
    *,
    models_dir: str | Path = Path("models"),
    name: str = "customer",
):
    """Register the scoring functions on every new connection of ``target``; return the listener.

    ``target`` is an engine, or the ``sqlalchemy.pool.Pool`` class to reach
    every engine a program creates (Superset's ``superset_config.py``). Only
    connections of the duckdb dialect are touched. Remove the listener
    with ``sqlalchemy.event.remove(target, "connect", listener)``.
    """

    def listener(dbapi_connection, connection_record) -> None:
        if type(dbapi_connection).__module__.split(".")[0] != "duckdb_engine":
            return
        register_connection(dbapi_connection, connection_record, model, models_dir=models_dir, name=name)

    event.listen(target, "connect", listener)
    return listener


def create_engine(
    db: str | Path,
    model: str | Path | None = None,
    *,
    models_dir: str | Path = Path("models"),
    name: str = "customer",
    read_only: bool = True,
    **engine_options,
) -> sqlalchemy.Engine:
    """Return a SQLAlchemy engine on ``db`` with the scoring functions on every connection.

    ``engine_options`` go to ``sqlalchemy.create_engine`` (``poolclass``, ``echo``, ...).
    """
    engine = sqlalchemy.create_engine(
        f"duckdb:///{Path(db).resolve()}", connect_args={"read_only": read_only}, **engine_options
    )
    register_on_connect(engine, model, models_dir=models_dir, name=name)
    return engine
