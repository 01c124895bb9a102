"""score_customer from several threads at once, and while another version is promoted."""

from __future__ import annotations

import json
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor

import duckdb
import pytest

from duckmkt import registry, sql_views
from duckmkt.scoring import HEADS, register

SCORE_ALL = "select customer_id, score_customer(f) as score from mkt.customer_features f order by customer_id"
THREADS = 8
# Seconds a thread may take before the test counts it as a deadlock. One
# scoring pass takes a few seconds on a loaded two-core machine.
DEADLOCK_TIMEOUT = 240
EXACT_FIELDS = ("strategy", "model_version", "imputed_features", "out_of_range_features")


def test_score_customer_eight_threads_match_single(small_db, trained_model_dir):
    con = duckdb.connect(str(small_db), read_only=True)
    register(con, trained_model_dir)
    expected = con.execute(SCORE_ALL).fetchall()
    start = threading.Barrier(THREADS)

    def score(_index: int) -> list[tuple]:
        cursor = con.cursor()
        try:
            start.wait(timeout=DEADLOCK_TIMEOUT)
            return cursor.execute(SCORE_ALL).fetchall()
        finally:
            cursor.close()

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        futures = [pool.submit(score, index) for index in range(THREADS)]
        results = [future.result(timeout=DEADLOCK_TIMEOUT) for future in futures]
    con.close()

    assert len(expected) > 100
    for result in results:
        assert [customer for customer, _score in result] == [customer for customer, _score in expected]
        for (_customer, score), (_same, reference) in zip(result, expected):
            # ONNX Runtime's float32 sums depend on how DuckDB splits rows into
            # batches, so the last digits of a prediction may differ.
            for head in HEADS:
                assert score[head] == pytest.approx(reference[head], rel=1e-5, abs=1e-6)
            assert {key: score[key] for key in EXACT_FIELDS} == {key: reference[key] for key in EXACT_FIELDS}


@pytest.fixture
def two_versions(small_db_copy, tmp_path, trained_model_dir):
    """The small database with two recorded versions (copies of the trained model), the first promoted."""
    models_dir = tmp_path / "models"
    versions = ["20250101T000000Z", "20250102T000000Z"]
    con = duckdb.connect(str(small_db_copy))
    sql_views.install(con)
    for version in versions:
        target = models_dir / "customer" / version
        shutil.copytree(trained_model_dir, target)
        metadata = json.loads((target / "metadata.json").read_text())
        metadata["version"] = version
        registry.write_metadata(target, metadata)
        registry.record_model(con, target)
    registry.promote(con, "customer", versions[0])
    yield con, models_dir, versions
    con.close()


def test_promote_during_long_query_keeps_one_version(two_versions):
    con, models_dir, (first, second) = two_versions
    register(con, models_dir=models_dir)
    # About 400 customers repeated 400 times: long enough to overlap the promote.
    long_query = (
        "select (score_customer(f)).model_version as version, count(*) "
        "from mkt.customer_features f cross join range(400) group by all"
    )
    started = threading.Event()
    outcome: dict[str, object] = {}

    def run_long_query() -> None:
        cursor = con.cursor()
        try:
            started.set()
            outcome["rows"] = cursor.execute(long_query).fetchall()
        except duckdb.Error as error:
            outcome["error"] = error
        finally:
            cursor.close()

    worker = threading.Thread(target=run_long_query)
    worker.start()
    promoter = con.cursor()
    try:
        started.wait(timeout=DEADLOCK_TIMEOUT)
        registry.promote(promoter, "customer", second)
        # Registering again binds the new version for the queries that start later.
        register(con, models_dir=models_dir)
    finally:
        worker.join(timeout=DEADLOCK_TIMEOUT)

    assert not worker.is_alive()
    assert "error" not in outcome, outcome
    versions = [version for version, _count in outcome["rows"]]
    assert len(versions) == 1
    assert versions[0] in (first, second)
    after = promoter.execute(long_query.replace("range(400)", "range(1)")).fetchall()
    assert [version for version, _count in after] == [second]
    promoter.close()
