"""duckmkt serve: the checks tests/test_server.py leaves out (no password, loopback default, LOAD, file readers)."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest

from duckmkt.server import DEFAULT_HOST, ServerSettings
from test_server import conninfo, start_server, stop_server


def test_server_settings_default_loopback(tmp_path):
    settings = ServerSettings(db=tmp_path / "x.duckdb", password="secret-password-value")

    assert DEFAULT_HOST == "127.0.0.1"
    assert settings.host == "127.0.0.1"
    assert settings.read_only is True
    assert "secret-password-value" not in repr(settings)


def test_serve_without_password_refuses_to_start(small_db, trained_model_dir):
    environment = {key: value for key, value in os.environ.items() if key != "DUCKMKT_SERVE_PASSWORD"}
    completed = subprocess.run(
        [sys.executable, "-m", "duckmkt", "serve", str(small_db), "--port", "0", "--model", str(trained_model_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=environment,
    )

    assert completed.returncode != 0
    assert "password" in completed.stderr.lower()


@pytest.fixture(scope="module")
def read_only_server(tmp_path_factory, small_db, trained_model_dir):
    import shutil

    db = tmp_path_factory.mktemp("security_server") / "served.duckdb"
    shutil.copy(small_db, db)
    process, port = start_server(db, trained_model_dir)
    yield port
    stop_server(process)


@pytest.mark.parametrize(
    "statement",
    [
        "load httpfs",
        "install httpfs",
        "attach '/tmp/duckmkt-attached.duckdb' as other",
        "copy (select 1) to '/tmp/duckmkt-copied.csv'",
        "select * from read_csv('/etc/passwd')",
        "select * from read_text('/etc/hostname')",
        "detach mkt",
        "checkpoint",
        "drop table raw.order_lines",
    ],
)
def test_server_read_only_rejects(read_only_server, statement):
    with psycopg.connect(conninfo(read_only_server), autocommit=True) as connection:
        with pytest.raises(psycopg.Error):
            connection.execute(statement).fetchall()
        # The connection stays usable after the rejected statement.
        assert connection.execute("select count(*) > 0 from raw.order_lines").fetchall() == [(True,)]


def test_server_without_password_rejected(read_only_server):
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(conninfo(read_only_server, password=""))
