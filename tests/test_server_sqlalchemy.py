"""The SQLAlchemy route (duckdb-engine) that Superset uses, with the UDFs on every connection."""

from __future__ import annotations

import sqlalchemy

from duckmkt.compile import compile_model
from duckmkt.database import connect_database
from duckmkt.sqlalchemy import create_engine, register_on_connect

QUERY = "select customer_id, (score_customer(f)).strategy from mkt.customer_features as f order by customer_id limit 5"


def test_sqlalchemy_engine_registers_udfs_per_connection(small_db_copy, trained_model_dir):
    con = connect_database(small_db_copy)
    try:
        compile_model(con, trained_model_dir)
        expected = con.execute(
            "select customer_id, strategy from mkt.customer_predictions order by customer_id limit 5"
        ).fetchall()
    finally:
        con.close()

    # NullPool opens a new DBAPI connection for each checkout, as Superset's
    # workers do, so the listener must register the functions every time.
    engine = create_engine(small_db_copy, trained_model_dir, read_only=True, poolclass=sqlalchemy.pool.NullPool)
    results = []
    for _attempt in range(2):
        with engine.connect() as connection:
            results.append([tuple(row) for row in connection.exec_driver_sql(QUERY).fetchall()])
    engine.dispose()

    assert results[0] == expected
    assert results[1] == expected


def test_sqlalchemy_pool_listener_reaches_plain_engines(small_db_copy, trained_model_dir):
    # What superset_config.py does: one listener on the Pool class, then
    # engines created by plain sqlalchemy.create_engine, as Superset does.
    listener = register_on_connect(sqlalchemy.pool.Pool, trained_model_dir)
    try:
        engine = sqlalchemy.create_engine(
            f"duckdb:///{small_db_copy}", connect_args={"read_only": True}, poolclass=sqlalchemy.pool.NullPool
        )
        with engine.connect() as connection:
            rows = connection.exec_driver_sql(QUERY).fetchall()
        engine.dispose()
    finally:
        sqlalchemy.event.remove(sqlalchemy.pool.Pool, "connect", listener)
    assert len(rows) == 5
    assert all(row[1] is not None for row in rows)
