"""duckmkt serve: the PostgreSQL wire endpoint, tested with psql and psycopg on a loopback port."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from duckmkt.compile import compile_model
from duckmkt.database import connect_database

PASSWORD = "test-password-1"
USER = "duckmkt"
SCORING_SQL = "select customer_id, purchase_prob, strategy from mkt.customer_predictions order by customer_id limit 20"
UDF_SQL = "select customer_id, (score_customer(f)).strategy from mkt.customer_features as f order by customer_id limit 20"

# Queries BI tools and drivers send when they connect or browse the schema
# (JDBC drivers of DBeaver and Metabase, Superset's psycopg dialect).
CATALOGUE_QUERIES = (
    "select version()",
    "set extra_float_digits = 3",
    "set application_name = 'PostgreSQL JDBC Driver'",
    "show transaction isolation level",
    "select current_schema(), session_user",
    "select current_database()",
    "select nspname from pg_catalog.pg_namespace order by nspname",
    "select oid, typname from pg_catalog.pg_type order by oid limit 5",
    "select n.nspname, c.relname, c.relkind from pg_catalog.pg_class as c "
    "join pg_catalog.pg_namespace as n on n.oid = c.relnamespace where n.nspname = 'mkt'",
    "select table_schema, table_name, table_type from information_schema.tables where table_schema = 'mkt'",
    "select column_name, data_type from information_schema.columns "
    "where table_schema = 'mkt' and table_name = 'customer_predictions' order by ordinal_position",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"duckmkt serve exited with {process.returncode}: {process.stderr.read()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"duckmkt serve did not listen on port {port} within {timeout} s")


def start_server(db: Path, model_dir: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "DUCKMKT_SERVE_PASSWORD": PASSWORD}
    process = subprocess.Popen(
        [sys.executable, "-m", "duckmkt", "serve", str(db), "--port", str(port), "--model", str(model_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_port(port, process)
    return process, port


def stop_server(process: subprocess.Popen) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    try:
        _out, err = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        _out, err = process.communicate()
        pytest.fail("duckmkt serve did not stop within 20 s of SIGTERM")
    return process.returncode, err


@pytest.fixture(scope="module")
def served_db(tmp_path_factory, small_db, trained_model_dir) -> tuple[Path, list[tuple]]:
    """A copy of the small database with the model compiled, and its expected predictions."""
    path = tmp_path_factory.mktemp("served") / "served.duckdb"
    shutil.copy(small_db, path)
    con = connect_database(path)
    try:
        compile_model(con, trained_model_dir)
        expected = con.execute(SCORING_SQL).fetchall()
    finally:
        con.close()
    return path, expected


@pytest.fixture(scope="module")
def server(served_db, trained_model_dir):
    process, port = start_server(served_db[0], trained_model_dir)
    yield port
    stop_server(process)


def conninfo(port: int, password: str = PASSWORD) -> str:
    return f"host=127.0.0.1 port={port} user={USER} dbname=duckmkt password={password} connect_timeout=10"


def psql(port: int, *commands: str, password: str = PASSWORD) -> subprocess.CompletedProcess:
    psql_binary = shutil.which("psql")
    if psql_binary is None:
        pytest.fail("psql is missing; install Debian's postgresql-client (.ci/run does)")
    arguments = [psql_binary, "-X", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=0"]
    for command in commands:
        arguments += ["-c", command]
    env = {"PATH": os.environ.get("PATH", ""), "PGPASSWORD": password, "PGCONNECT_TIMEOUT": "10"}
    return subprocess.run(
        [*arguments, f"host=127.0.0.1 port={port} user={USER} dbname=duckmkt"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_psql_scoring_query(server, served_db):
    completed = psql(server, SCORING_SQL, UDF_SQL)
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.strip().splitlines()
    expected = served_db[1]
    compiled_rows = [line.split("|") for line in lines[: len(expected)]]
    udf_rows = [line.split("|") for line in lines[len(expected):]]
    assert [row[0] for row in compiled_rows] == [row[0] for row in expected]
    assert [float(row[1]) for row in compiled_rows] == pytest.approx([row[1] for row in expected], abs=1e-12)
    assert [row[2] for row in compiled_rows] == [row[2] for row in expected]
    assert [row[1] for row in udf_rows] == [row[2] for row in expected]


def test_psql_wrong_password_rejected(server):
    completed = psql(server, "select 1", password="not-the-password")
    assert completed.returncode != 0
    assert "password authentication failed" in completed.stderr


def test_psql_writes_rejected_read_only(server):
    for statement in (
        "create table mkt.intruder (a int)",
        "delete from mkt.customer_scores",
        "attach '/tmp/other.duckdb' as other",
        "copy mkt.compiled_model to '/tmp/leak.csv'",
        "install httpfs",
        "set enable_external_access = true",
    ):
        completed = psql(server, statement)
        assert "ERROR" in completed.stderr, statement
    completed = psql(server, "select count(*) from mkt.customer_scores")
    assert completed.returncode == 0, completed.stderr


def test_psql_meta_commands_list_relations(server):
    completed = psql(server, r"\dt mkt.*", r"\dv mkt.customer_predictions", r"\dn")
    assert completed.returncode == 0, completed.stderr
    assert "compiled_model" in completed.stdout
    assert "customer_predictions" in completed.stdout
    assert "mkt" in completed.stdout


def test_psycopg_catalogue_queries(server):
    with psycopg.connect(conninfo(server), autocommit=True) as connection:
        for query in CATALOGUE_QUERIES:
            cursor = connection.execute(query)
            if cursor.description is not None:
                cursor.fetchall()
        schemas = [row[0] for row in connection.execute(CATALOGUE_QUERIES[6]).fetchall()]
        columns = [row[0] for row in connection.execute(CATALOGUE_QUERIES[-1]).fetchall()]
    assert "mkt" in schemas
    assert columns[:3] == ["customer_id", "purchase_prob", "expected_spend"]


def test_psycopg_parameterized_scoring(server, served_db):
    expected = served_db[1][0]
    with psycopg.connect(conninfo(server)) as connection:
        rows = connection.execute(
            "select customer_id, purchase_prob, strategy from mkt.customer_predictions where customer_id = %s",
            [expected[0]],
        ).fetchall()
        values = connection.execute("select %s::int + 1, %s::double * 2, %s", [41, 1.25, "text"]).fetchall()
    assert rows == [expected]
    assert values == [(42, 2.5, "text")]


def test_psycopg_wrong_password_rejected(server):
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(conninfo(server, password="wrong"))


def test_psycopg_write_rejected(server):
    with psycopg.connect(conninfo(server), autocommit=True) as connection:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            connection.execute("insert into mkt.customer_scores (customer_id) values ('x')")
        assert connection.execute("select 1").fetchall() == [(1,)]


def test_server_several_clients_at_once(server, served_db):
    def score(_index: int) -> list[tuple]:
        with psycopg.connect(conninfo(server)) as connection:
            return connection.execute(SCORING_SQL).fetchall()

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(score, range(12)))
    assert all(result == served_db[1] for result in results)


def test_server_sigterm_stops_cleanly(served_db, trained_model_dir, tmp_path):
    db = tmp_path / "sigterm.duckdb"
    shutil.copy(served_db[0], db)
    process, port = start_server(db, trained_model_dir)
    connection = psycopg.connect(conninfo(port))
    connection.execute("select 1").fetchall()

    returncode, log = stop_server(process)
    connection.close()

    assert returncode == 0
    assert "Received SIGTERM" in log
    assert "Stopped; closed 1 client connections" in log
    # Connection 1 is wait_for_port's probe; psycopg's is the next one.
    assert re.search(r"Connection \d+ from 127\.0\.0\.1:\d+: user duckmkt", log)
    assert PASSWORD not in log
