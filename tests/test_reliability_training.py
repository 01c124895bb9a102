"""Training on data it cannot learn from, and `duckmkt train` killed with SIGKILL part way.

After a kill the registry must be as before: the promoted version keeps
scoring, and no half-written version is listed or resolved.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from duckmkt import registry, sql_views
from duckmkt.errors import DataError
from duckmkt.scoring import register, resolve_model_dir

pytestmark = pytest.mark.train

OLD_VERSION = "20250101T000000Z"
# Seconds a killed run may need to start; generous for a loaded two-core machine.
START_TIMEOUT = 240


def test_train_identical_customers_raises(small_db_copy, tmp_path):
    from duckmkt.training import train

    con = duckdb.connect(str(small_db_copy))
    # Keep the customer with the most orders and copy that history to 80 ids.
    con.execute(
        """
        create temp table one_customer as
        select * from raw.order_lines
        where customer_id = (
            select customer_id from raw.order_lines where customer_id is not null
            group by customer_id order by count(distinct order_id) desc, customer_id limit 1
        )
        """
    ).fetchall()
    con.execute("delete from raw.order_lines").fetchall()
    con.execute(
        """
        insert into raw.order_lines by name
        select
            * exclude (copy_number, customer_id, order_id, source_line),
            customer_id || '-' || copy_number as customer_id,
            order_id || '-' || copy_number as order_id,
            source_line * 1000 + copy_number as source_line,
        from one_customer, range(80) as copies(copy_number)
        """
    ).fetchall()

    with pytest.raises(DataError, match="single value") as raised:
        train(con, models_dir=tmp_path / "models", epochs=1)
    con.close()

    assert "choose another cutoff" in str(raised.value)
    assert not (tmp_path / "models" / "customer").exists()


def test_train_cutoff_after_data_raises(small_db, tmp_path):
    from duckmkt.training import train

    con = duckdb.connect(str(small_db), read_only=True)
    try:
        with pytest.raises(DataError, match="ends after the latest sale day") as raised:
            train(con, models_dir=tmp_path / "models", epochs=1, validation_cutoff="2030-01-01")
    finally:
        con.close()
    assert "choose a cutoff on or before" in str(raised.value)
    assert not (tmp_path / "models").exists()


@pytest.fixture
def promoted_db(small_db_copy, tmp_path, trained_model_dir):
    """The small database with one promoted model version under ``tmp_path/models``."""
    models_dir = tmp_path / "models"
    target = models_dir / "customer" / OLD_VERSION
    shutil.copytree(trained_model_dir, target)
    metadata = registry.load_metadata(target)
    metadata["version"] = OLD_VERSION
    registry.write_metadata(target, metadata)
    con = duckdb.connect(str(small_db_copy))
    sql_views.install(con)
    registry.record_model(con, target)
    registry.promote(con, "customer", OLD_VERSION)
    con.close()
    return small_db_copy, models_dir


def assert_registry_consistent(db: Path, models_dir: Path) -> None:
    """The promoted old version is the only listed one, scores, and every visible folder is complete."""
    con = duckdb.connect(str(db))
    try:
        listed = [(version, status) for _name, version, _created, _kind, status, _t, _v in registry.list_models(con)]
        assert listed == [(OLD_VERSION, "promoted")]

        for folder in sorted((models_dir / "customer").iterdir()):
            if folder.name.startswith("."):
                continue
            # A visible version folder is always complete.
            registry.verify_model(folder)

        assert resolve_model_dir(con=con, models_dir=models_dir) == models_dir / "customer" / OLD_VERSION
        register(con, models_dir=models_dir)
        versions = con.execute("select distinct (score_customer(f)).model_version from mkt.customer_features f").fetchall()
        assert versions == [(OLD_VERSION,)]
    finally:
        con.close()


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL


def start_training(db: Path, models_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "duckmkt", "train", str(db), "--models-dir", str(models_dir), "--epochs", "200"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def test_train_killed_while_starting(promoted_db):
    db, models_dir = promoted_db
    process = start_training(db, models_dir)
    # One second in, the process is importing TensorFlow or opening the database.
    time.sleep(1.0)
    kill(process)

    assert_registry_consistent(db, models_dir)


def test_train_killed_during_epochs(promoted_db):
    db, models_dir = promoted_db
    process = start_training(db, models_dir)
    # Lines about reading the data come first, then one per epoch.
    lines = []
    while not lines or not lines[-1].startswith(("Epoch 1/", "Traceback")) and lines[-1]:
        lines.append(process.stdout.readline())
    kill(process)

    assert lines[-1].startswith("Epoch 1/"), lines
    assert_registry_consistent(db, models_dir)
    completed = subprocess.run(
        [sys.executable, "-m", "duckmkt", "models", "list", str(db)], capture_output=True, text=True, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert OLD_VERSION in completed.stdout
    assert "promoted" in completed.stdout


def test_save_model_killed_while_writing(promoted_db):
    db, models_dir = promoted_db
    # 400 MB of model bytes keep the writer busy long enough to be killed
    # with its hidden temporary folder half written.
    script = textwrap.dedent(
        f"""
        from duckmkt.registry import save_model
        save_model({str(models_dir)!r}, "customer", b"\\0" * (400 * 1024 * 1024),
                   {{"feature_names": ["x"], "input_name": "features", "output_names": ["y"]}}, {{}})
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script])
    root = models_dir / "customer"
    deadline = time.monotonic() + START_TIMEOUT
    temporary = []
    while not temporary and time.monotonic() < deadline and process.poll() is None:
        temporary = [path for path in root.iterdir() if path.name.startswith(".") and path.name.endswith(".tmp")]
        time.sleep(0.005)
    assert temporary, "save_model finished or failed before its temporary folder was seen"
    kill(process)

    visible = sorted(path.name for path in root.iterdir() if not path.name.startswith("."))
    assert visible == [OLD_VERSION]
    assert_registry_consistent(db, models_dir)


def test_train_candidate_keeps_promoted_model_compiled(promoted_db, capsys):
    from duckmkt import pipeline
    from duckmkt.compile import compile_model

    db, models_dir = promoted_db
    con = duckdb.connect(str(db))
    compile_model(con, models_dir / "customer" / OLD_VERSION)
    con.close()

    result = pipeline.train_command(db, models_dir=models_dir, epochs=1)

    con = duckdb.connect(str(db), read_only=True)
    try:
        versions = con.execute("select distinct model_version from mkt.customer_predictions").fetchall()
        promoted = registry.promoted_version(con, "customer")
    finally:
        con.close()
    assert result.version != OLD_VERSION
    assert promoted == OLD_VERSION
    assert versions == [(OLD_VERSION,)]
    output = capsys.readouterr().out
    assert f"Version {OLD_VERSION} of model customer stays promoted" in output
    assert f"duckmkt models promote {db} {result.version}" in output


@pytest.mark.parametrize("epochs", [0, -1])
def test_train_rejects_epochs_below_one(small_db, tmp_path, epochs):
    from duckmkt.errors import DuckmktError
    from duckmkt.training import train

    con = duckdb.connect(str(small_db), read_only=True)
    try:
        with pytest.raises(DuckmktError, match=f"Invalid epochs {epochs}"):
            train(con, models_dir=tmp_path / "models", epochs=epochs)
    finally:
        con.close()
    assert not (tmp_path / "models").exists()
