"""Train the customer model on the full Online Retail data with default settings.

Prints each validation metric beside its baseline and the wall time. Run from
the repository root:

    python benchmarks/train_online_retail.py [--data PATH] [--epochs N]

The database and the model folder are written to a temporary directory that
is removed afterwards.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

from duckmkt.database import connect_database
from duckmkt.loading import load_orders
from duckmkt.training import train

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "online_retail" / "online_retail.csv.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Online Retail CSV file (default: %(default)s).")
    parser.add_argument("--epochs", type=int, default=200, help="Maximum training epochs (default: %(default)s).")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    with tempfile.TemporaryDirectory(prefix="duckmkt-benchmark-") as folder:
        con = connect_database(Path(folder) / "online_retail.duckdb")
        started = time.perf_counter()
        load_orders(con, arguments.data)
        load_seconds = time.perf_counter() - started

        started = time.perf_counter()
        result = train(con, models_dir=Path(folder) / "models", epochs=arguments.epochs)
        train_seconds = time.perf_counter() - started
        con.close()

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"settings: {result.settings} (derived: {', '.join(result.derived_settings)})")
    print(f"rows: {result.n_train_rows} training, {result.n_validation_rows} validation")
    print(f"epochs: {result.n_epochs} run, best {result.best_epoch}; ONNX parity {result.parity_max_abs_diff:.2g}")
    print()
    print(f"{'metric':<20}{'model':>12}{'baseline':>12}  model better")
    for name, model_value, baseline_value, better in result.comparison():
        print(f"{name:<20}{model_value:>12.4f}{baseline_value:>12.4f}  {'yes' if better else 'no'}")
    print()
    print(f"wall time: load {load_seconds:.1f} s, train + export + save {train_seconds:.1f} s")


if __name__ == "__main__":
    main()
