"""No customer data in error output or logs, and customer ids replaced by keyed hashes on load."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from duckmkt import registry
from duckmkt.database import connect_database
from duckmkt.errors import InputFileError
from duckmkt.loading import load_file
from duckmkt.loading.hashing import KEY_ENVIRONMENT_VARIABLE, hash_id, read_id_key

KEY = "k3y-for-tests-0123456789abcdef-0123456789"
ORDERS_HEADER = "customer_id,order_id,ordered_at,product_id,quantity,unit_price,description,country\n"


def run_cli(*arguments: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key != KEY_ENVIRONMENT_VARIABLE}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "duckmkt", *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=environment,
        cwd=cwd,
    )


def customer_ids(db: Path) -> list[str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return [row[0] for row in con.execute("select distinct customer_id from mkt.customer_features").fetchall()]
    finally:
        con.close()


def leaked_ids(text: str, ids: list[str]) -> list[str]:
    return [customer for customer in ids if re.search(rf"(?<![\w.]){re.escape(customer)}(?![\w.])", text)]


@pytest.fixture
def broken_model(tmp_path, trained_model_dir) -> Path:
    """A model whose metadata lists a feature the database lacks, so scoring fails inside the UDF."""
    model_dir = tmp_path / "broken_model"
    shutil.copytree(trained_model_dir, model_dir)
    metadata = registry.load_metadata(model_dir)
    metadata["feature_names"] = [*metadata["feature_names"][:-1], "not_a_feature"]
    registry.write_metadata(model_dir, metadata)
    return model_dir


def test_score_unexpected_error_no_customer_data(small_db_copy, broken_model):
    ids = customer_ids(small_db_copy)

    completed = run_cli("score", str(small_db_copy), "--model", str(broken_model))

    assert completed.returncode == 1
    assert "Error: unexpected InvalidInputException" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert len(completed.stderr.strip().splitlines()) == 1
    assert leaked_ids(completed.stderr, ids) == []


def test_score_unexpected_error_debug_traceback_no_rows(small_db_copy, broken_model):
    ids = customer_ids(small_db_copy)

    completed = run_cli("--debug", "score", str(small_db_copy), "--model", str(broken_model))

    assert completed.returncode == 1
    assert "Traceback" in completed.stderr
    assert "not_a_feature" in completed.stderr
    # Local variables are not shown, so no row of the batch appears.
    assert "locals" not in completed.stderr.lower()
    assert leaked_ids(completed.stderr, ids) == []


def test_score_debug_log_no_customer_data(small_db_copy, trained_model_dir):
    ids = customer_ids(small_db_copy)

    completed = run_cli("--debug", "score", str(small_db_copy), "--model", str(trained_model_dir))

    assert completed.returncode == 0, completed.stderr
    # stdout shows scored customers on purpose; the log on stderr must not.
    assert leaked_ids(completed.stdout, ids)
    assert leaked_ids(completed.stderr, ids) == []


def test_load_debug_log_rejected_rows_no_customer_data(tmp_path):
    csv_path = tmp_path / "orders.csv"
    csv_path.write_text(
        ORDERS_HEADER
        + "48151,536365,2010-12-01 08:26:00,85123A,6,2.55,WHITE,UK\n"
        + "62342,536366,not a date,71053,6,3.39,LANTERN,UK\n"
        + "77123,536367,2010-12-01 08:26:00,22752,1e999,7.65,SET,UK\n"
        + "91919,536368,2010-12-01 08:26:00,21730,6\n",
        encoding="utf-8",
    )

    completed = run_cli("--debug", "load", str(tmp_path / "shop.duckdb"), str(csv_path))

    assert completed.returncode == 0, completed.stderr
    assert "rejected" in completed.stderr
    assert leaked_ids(completed.stderr, ["48151", "62342", "77123", "91919"]) == []


def write_orders(path: Path, rows: list[str]) -> Path:
    path.write_text(ORDERS_HEADER + "".join(row + "\n" for row in rows), encoding="utf-8")
    return path


def text_of_raw_tables(db: Path) -> str:
    """Return every text value stored in the raw schema, joined."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        columns = con.execute(
            "select table_name, column_name from duckdb_columns() where schema_name = 'raw' and data_type in ('VARCHAR', 'JSON')"
        ).fetchall()
        values = []
        for table, column in columns:
            rows = con.execute(f'select "{column}"::varchar from raw."{table}" where "{column}" is not null').fetchall()
            values += [row[0] for row in rows]
    finally:
        con.close()
    return "\n".join(values)


def test_load_hash_ids_orders_and_rejected_rows(tmp_path):
    db = tmp_path / "shop.duckdb"
    orders = write_orders(
        tmp_path / "orders.csv",
        [
            "48151,536365,2010-12-01 08:26:00,85123A,6,2.55,WHITE,UK",
            "48151.0,536366,2010-12-02 08:26:00,71053,6,3.39,LANTERN,UK",
            "62342,536367,not a date,22752,2,7.65,SET,UK",
            "7.7123E+04,536368,2010-12-01 08:26:00,21730,6,4.25,GLASS,UK",
            "91919,536369,2010-12-01 08:26:00,21730,6",
        ],
    )

    completed = run_cli("load", str(db), str(orders), "--hash-ids", env={KEY_ENVIRONMENT_VARIABLE: KEY})

    assert completed.returncode == 0, completed.stderr
    con = duckdb.connect(str(db), read_only=True)
    stored = sorted({row[0] for row in con.execute("select customer_id from raw.order_lines").fetchall()})
    reasons = sorted(row[0] for row in con.execute("select reason from raw.rejected_rows").fetchall())
    con.close()
    key = KEY.encode()
    assert stored == [hash_id(key, "48151")]
    assert reasons == ["invalid_date", "invalid_id", "too_few_fields"]
    text = text_of_raw_tables(db)
    # A rejected row keeps its source text with the id hashed as it would be loaded.
    assert hash_id(key, "62342") in text
    for raw_id in ("48151", "62342", "7.7123E+04", "91919"):
        assert raw_id not in text, raw_id
    assert KEY not in text
    assert KEY.encode() not in db.read_bytes()


def test_load_hash_ids_consistent_across_kinds_and_loads(tmp_path):
    db = tmp_path / "shop.duckdb"
    first = write_orders(tmp_path / "january.csv", ["48151,536365,2010-12-01 08:26:00,85123A,6,2.55,WHITE,UK"])
    second = write_orders(tmp_path / "february.csv", ["48151.0,536400,2011-02-01 08:26:00,71053,1,3.39,LANTERN,UK"])
    customers = tmp_path / "customers.csv"
    customers.write_text("customer_id,country,gender\n48151,UK,f\n", encoding="utf-8")
    key = "x" * 40
    con = connect_database(db)

    load_file(con, first, id_key=key.encode())
    load_file(con, second, id_key=key.encode())
    load_file(con, customers, kind="customers", id_key=key.encode())

    order_ids = {row[0] for row in con.execute("select customer_id from raw.order_lines").fetchall()}
    customer_rows = con.execute("select customer_id from raw.customers").fetchall()
    joined = con.execute(
        "select count(*) from raw.order_lines join raw.customers using (customer_id)"
    ).fetchall()[0][0]
    con.close()
    assert order_ids == {hash_id(key.encode(), "48151")}
    assert customer_rows == [(hash_id(key.encode(), "48151"),)]
    assert joined == 2


def test_load_hash_ids_key_file(tmp_path):
    db = tmp_path / "shop.duckdb"
    key_file = tmp_path / "secrets" / "id.key"
    key_file.parent.mkdir()
    key_file.write_text("f" * 48 + "\n", encoding="utf-8")
    orders = write_orders(tmp_path / "orders.csv", ["48151,536365,2010-12-01 08:26:00,85123A,6,2.55,WHITE,UK"])

    completed = run_cli("load", str(db), str(orders), "--hash-ids", "--id-key-file", str(key_file))

    assert completed.returncode == 0, completed.stderr
    con = duckdb.connect(str(db), read_only=True)
    stored = con.execute("select customer_id from raw.order_lines").fetchall()
    con.close()
    assert stored == [(hash_id(b"f" * 48, "48151"),)]


def test_load_hash_ids_missing_key_one_error_line(tmp_path):
    db = tmp_path / "shop.duckdb"
    orders = write_orders(tmp_path / "orders.csv", ["48151,536365,2010-12-01 08:26:00,85123A,6,2.55,WHITE,UK"])

    completed = run_cli("load", str(db), str(orders), "--hash-ids")

    assert completed.returncode == 1
    assert KEY_ENVIRONMENT_VARIABLE in completed.stderr
    assert "--id-key-file" in completed.stderr
    assert len(completed.stderr.strip().splitlines()) == 1
    assert not db.exists()


def test_read_id_key_short_key_rejected(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENVIRONMENT_VARIABLE, "short")
    with pytest.raises(InputFileError, match="at least 32"):
        read_id_key()

    missing = tmp_path / "absent.key"
    with pytest.raises(InputFileError, match="unreadable"):
        read_id_key(missing)


def test_read_options_repr_hides_key():
    from duckmkt.loading.convert import ReadOptions

    assert KEY not in repr(ReadOptions(id_key=KEY.encode()))
