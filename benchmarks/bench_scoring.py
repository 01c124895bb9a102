"""Time score_customer in DuckDB against ONNX Runtime called directly and Keras model.predict.

The script loads Online Retail, trains a small model with the training code
(hidden layers 64 and 32), and writes a table of feature rows resampled from
the real mkt.customer_features rows (row k copies customer hash(k) mod n).
Then, on the same rows:

- score_customer: the Arrow UDF in a DuckDB query, in a child process per
  size, which also reports its peak resident memory (VmHWM) so that
  memory can be compared across sizes;
- the compiled SQL macro mkt.score_customers (duckmkt compile), also in a
  child process per size;
- ONNX Runtime called directly on the float32 matrix of the first --limit-rows
  rows at several batch sizes, the best of which is the practical limit;
- Keras model.predict on the first --keras-rows rows of the same matrix, at
  its default batch size of 32 and at 2,048 and 32,768 rows.

    python benchmarks/bench_scoring.py --sizes 100000 1000000 10000000 [--repeats 3]

Sizes up to 1 M run --repeats times (median); larger sizes run once.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "online_retail" / "online_retail.csv.gz"
BATCH_SIZES = (2048, 16384, 131072, 1048576)
HIDDEN_UNITS = (64, 32)
REPEATED_MAX_ROWS = 1_000_000

# Every query reads all three predictions and the strategy, so DuckDB cannot prune any output.
UDF_QUERY = """
select sum(s.purchase_prob + s.expected_spend + s.churn_risk), count(s.strategy)
from (select score_customer(f) as s from {view} as f)
"""
MACRO_QUERY = """
select sum(purchase_prob + expected_spend + churn_risk), count(strategy)
from mkt.score_customers('{view}')
"""

# Row k of the bench table copies the real customer hash(k) mod n, under the id k.
RESAMPLE_SQL = """
create or replace table bench_features as
with
source as (
    select row_number() over (order by customer_id) - 1 as source_index, *
    from mkt.customer_features
),
drawn as (
    select k, hash(k, 17) % (select count(*) from source) as source_index
    from range($n_rows) as rows (k)
)
select drawn.k as row_id, source.* exclude (source_index) replace (drawn.k::varchar as customer_id)
from drawn
join source using (source_index)
order by row_id
"""


def prepare(folder: Path, n_rows: int, epochs: int) -> tuple[Path, Path, object]:
    """Build the database and model under ``folder``; return (database, model folder, Keras model)."""
    from duckmkt.compile import compile_model
    from duckmkt.database import connect_database
    from duckmkt.loading import load_orders
    from duckmkt.training import train
    from duckmkt.training.trainer import CustomerModelTrainer

    database = folder / "scoring.duckdb"
    con = connect_database(database)
    con.execute("set enable_progress_bar = false")
    load_orders(con, DATA)
    settings = {"epochs": epochs, "hidden_units": HIDDEN_UNITS, "seed": 0}
    model_dir = train(con, models_dir=folder / "models", **settings).model_dir
    # The same settings and seed rebuild the same Keras network in memory,
    # because train() keeps only the ONNX export.
    keras_model = CustomerModelTrainer(**settings).fit(con).model_
    compile_model(con, model_dir)
    con.execute(RESAMPLE_SQL, {"n_rows": n_rows})
    con.close()
    return database, model_dir, keras_model


def size_view(n_rows: int) -> str:
    return f"bench_features_{n_rows}"


def create_size_views(database: Path, sizes: list[int]) -> None:
    con = duckdb.connect(str(database))
    for n_rows in sizes:
        con.execute(
            f"create or replace view {size_view(n_rows)} as "
            f"select * exclude (row_id) from bench_features where row_id < {int(n_rows)}"
        )
    con.close()


def run_child(database: Path, model_dir: Path, path: str, n_rows: int, memory_limit: str | None) -> dict:
    """Score ``n_rows`` rows by ``path`` (udf or macro) in a new Python process; return its timing and memory."""
    command = [sys.executable, __file__, "--child", path, str(database), str(model_dir), str(n_rows), memory_limit or "default"]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def child_main(path: str, database: Path, model_dir: Path, n_rows: int, memory_limit: str) -> None:
    """Score in this process and print seconds, resident memory before the query and peak resident memory (MB)."""
    from duckmkt.database import connect_database
    from duckmkt.scoring import register

    con = connect_database(database)
    con.execute("set enable_progress_bar = false")
    if memory_limit != "default":
        # DuckDB keeps the table blocks it read in its buffer pool up to this
        # limit, so without one the peak grows with the table size.
        con.execute("set memory_limit = ?", [memory_limit])
    register(con, model_dir)
    before_mb = current_rss_mb()
    query = (UDF_QUERY if path == "udf" else MACRO_QUERY).format(view=size_view(n_rows))
    started = time.perf_counter()
    con.execute(query).fetchall()
    seconds = time.perf_counter() - started
    peak_mb = proc_status_mb("VmHWM")
    print(json.dumps({"seconds": seconds, "rss_before_mb": before_mb, "peak_rss_mb": peak_mb}))


def current_rss_mb() -> float:
    return proc_status_mb("VmRSS")


def proc_status_mb(field: str) -> float:
    """Return a memory field of /proc/self/status (Linux) in MB.

    VmHWM, the peak resident memory, is used instead of ru_maxrss because
    Linux keeps ru_maxrss across execve, so a child would report the peak
    of the parent that started it.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def feature_matrix(database: Path, model_dir: Path, n_rows: int) -> np.ndarray:
    """Return the float32 matrix of the first ``n_rows`` bench rows, columns in the model's feature order."""
    from duckmkt.registry import load_metadata

    names = load_metadata(model_dir)["feature_names"]
    con = duckdb.connect(str(database), read_only=True)
    columns = ", ".join(f'"{name}"::float' for name in names)
    table = con.sql(f"select {columns} from bench_features where row_id < {int(n_rows)} order by row_id").to_arrow_table()
    con.close()
    return np.column_stack([column.to_numpy(zero_copy_only=False) for column in table.columns]).astype(np.float32)


def onnx_runtime_throughput(model_dir: Path, matrix: np.ndarray, batch_size: int) -> float:
    """Return rows per second of session.run over ``matrix`` in batches of ``batch_size`` (median of 3 passes)."""
    from duckmkt.scoring import HEADS, Scorer

    scorer = Scorer.load(model_dir)
    input_name = scorer.metadata.get("input_name", "features")
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        for start in range(0, len(matrix), batch_size):
            scorer.session.run(list(HEADS), {input_name: matrix[start : start + batch_size]})
        timings.append(time.perf_counter() - started)
    return len(matrix) / statistics.median(timings)


def keras_throughput(keras_model, matrix: np.ndarray) -> dict[int, float]:
    """Return rows per second of model.predict over ``matrix`` at Keras's default batch size (32) and at larger ones.

    The default batch runs on the first 20,000 rows only, because it takes
    one Python step per 32 rows.
    """
    results = {}
    for batch_size in (32, 2048, 32768):
        rows = matrix[:20_000] if batch_size == 32 else matrix
        keras_model.predict(rows[:batch_size], batch_size=batch_size, verbose=0)
        started = time.perf_counter()
        keras_model.predict(rows, batch_size=batch_size, verbose=0)
        results[batch_size] = len(rows) / (time.perf_counter() - started)
    return results


def measure_paths(
    database: Path, model_dir: Path, sizes: list[int], repeats: int, memory_limit: str | None
) -> dict[str, dict[int, dict]]:
    """Run score_customer and the compiled macro at each size; return the median seconds and the max peak RSS."""
    results: dict[str, dict[int, dict]] = {"udf": {}, "macro": {}}
    for n_rows in sizes:
        n_runs = repeats if n_rows <= REPEATED_MAX_ROWS else 1
        for path in results:
            runs = [run_child(database, model_dir, path, n_rows, memory_limit) for _ in range(n_runs)]
            results[path][n_rows] = {
                "seconds": statistics.median(run["seconds"] for run in runs),
                "rss_before_mb": max(run["rss_before_mb"] for run in runs),
                "peak_rss_mb": max(run["peak_rss_mb"] for run in runs),
                "runs": n_runs,
            }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000], help="rows to score")
    parser.add_argument("--repeats", type=int, default=3, help="runs per size up to 1 M rows; the median counts")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs of the benchmark model")
    parser.add_argument("--limit-rows", type=int, default=1_000_000, help="rows of the direct ONNX Runtime runs")
    parser.add_argument("--keras-rows", type=int, default=200_000, help="rows of the Keras model.predict runs")
    parser.add_argument("--memory-limit", default=None, help="DuckDB memory_limit of the scoring processes, such as 512MB (default: DuckDB's)")
    parser.add_argument("--child", nargs=5, metavar=("PATH", "DB", "MODEL", "ROWS", "LIMIT"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        path, database, model_dir, n_rows, memory_limit = arguments.child
        child_main(path, Path(database), Path(model_dir), int(n_rows), memory_limit)
        return

    sizes = sorted(arguments.sizes)
    with tempfile.TemporaryDirectory(prefix="duckmkt-bench-scoring-", dir="/tmp") as folder:
        database, model_dir, keras_model = prepare(Path(folder), max(sizes), arguments.epochs)
        create_size_views(database, sizes)

        matrix = feature_matrix(database, model_dir, min(arguments.limit_rows, max(sizes)))
        direct = {batch: onnx_runtime_throughput(model_dir, matrix, batch) for batch in BATCH_SIZES if batch <= len(matrix)}
        keras = keras_throughput(keras_model, matrix[: arguments.keras_rows])
        keras_batch, keras_rows_per_second = max(keras.items(), key=lambda item: item[1])
        limit_batch, limit = max(direct.items(), key=lambda item: item[1])
        paths = measure_paths(database, model_dir, sizes, arguments.repeats, arguments.memory_limit)

    print(f"model: {matrix.shape[1]} inputs, hidden layers {HIDDEN_UNITS}; DuckDB memory_limit {arguments.memory_limit or 'default'}")
    print("direct ONNX Runtime on a float32 matrix of", f"{len(matrix):,} rows:")
    for batch, rows_per_second in direct.items():
        print(f"  batch {batch:>9,}: {rows_per_second:>13,.0f} rows/s")
    for batch, rows_per_second in keras.items():
        print(f"Keras model.predict, batch {batch:>6,}: {rows_per_second:>13,.0f} rows/s")
    print(f"x Keras: against the best Keras batch ({keras_batch:,}); x Keras(32): against the default batch of 32")
    print()
    print(
        f"{'path':<8}{'rows':>12}{'runs':>6}{'median s':>10}{'rows/s':>13}{'/ ONNX limit':>13}{'x Keras':>9}"
        f"{'x Keras(32)':>12}{'RSS before MB':>15}{'peak RSS MB':>13}"
    )
    for path, by_size in paths.items():
        for n_rows, result in by_size.items():
            rows_per_second = n_rows / result["seconds"]
            print(
                f"{path:<8}{n_rows:>12,}{result['runs']:>6}{result['seconds']:>10.2f}{rows_per_second:>13,.0f}"
                f"{rows_per_second / limit:>13.3f}{rows_per_second / keras_rows_per_second:>9.2f}"
                f"{rows_per_second / keras[32]:>12.1f}{result['rss_before_mb']:>15,.0f}{result['peak_rss_mb']:>13,.0f}"
            )
    print(f"ONNX limit: batch {limit_batch:,}, {limit:,.0f} rows/s")


if __name__ == "__main__":
    main()
