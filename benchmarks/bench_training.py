"""Time `duckmkt train` on resampled Online Retail customers at several sizes.

For each size, scale_data.py writes that many resampled customers as
Parquet, the lines are inserted into raw.order_lines of a new database, and
``duckmkt.pipeline.train_command`` (the function behind ``duckmkt train``)
runs on it with a fixed number of epochs. The script prints the wall time,
the training rows (one per customer known at the training cutoff) and rows
per second, and the growth of each against the smallest size.

    python benchmarks/bench_training.py --customers 10000 100000 1000000 [--epochs 20]

Every file is written under a temporary folder in /tmp and removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale_data import generate, open_source  # noqa: E402

from duckmkt import pipeline  # noqa: E402
from duckmkt.database import connect_database  # noqa: E402


def build_database(source, folder: Path, n_customers: int) -> tuple[Path, int]:
    """Write ``n_customers`` resampled customers into a new database; return it and its number of lines."""
    parquet = folder / f"lines_{n_customers}.parquet"
    n_lines = generate(source, parquet, n_customers)
    database = folder / f"train_{n_customers}.duckdb"
    con = connect_database(database)
    con.execute(f"insert into raw.order_lines select * from read_parquet('{parquet}')")
    con.close()
    parquet.unlink()
    return database, n_lines


def train_once(database: Path, folder: Path, epochs: int) -> tuple[float, int]:
    """Run the training command on ``database``; return its wall time and the number of training rows."""
    models_dir = folder / f"models_{database.stem}"
    started = time.perf_counter()
    pipeline.train_command(database, models_dir=models_dir, epochs=epochs)
    seconds = time.perf_counter() - started
    metadata_files = sorted(models_dir.glob("customer/*/metadata.json"))
    n_rows = json.loads(metadata_files[-1].read_text())["n_train_rows"]
    return seconds, n_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[10_000, 100_000, 1_000_000], help="sizes to train on")
    parser.add_argument("--epochs", type=int, default=20, help="training epochs at every size (early stopping may end sooner)")
    arguments = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory(prefix="duckmkt-bench-training-", dir="/tmp") as folder:
        folder = Path(folder)
        source = open_source(None, folder)
        for n_customers in sorted(arguments.customers):
            database, n_lines = build_database(source, folder, n_customers)
            seconds, n_rows = train_once(database, folder, arguments.epochs)
            database.unlink()
            rows.append((n_customers, n_lines, n_rows, seconds))
            print(f"{n_customers:,} customers: {seconds:.1f} s", file=sys.stderr, flush=True)
        source.close()

    print(f"epochs {arguments.epochs}; machine shared with other jobs; one run per size")
    print(f"{'customers':>10}{'lines':>13}{'train rows':>12}{'wall s':>9}{'rows/s':>10}{'time x':>8}{'rows x':>8}")
    first = rows[0]
    for n_customers, n_lines, n_rows, seconds in rows:
        print(
            f"{n_customers:>10,}{n_lines:>13,}{n_rows:>12,}{seconds:>9.1f}{n_rows / seconds:>10,.0f}"
            f"{seconds / first[3]:>8.2f}{n_rows / first[2]:>8.2f}"
        )


if __name__ == "__main__":
    main()
