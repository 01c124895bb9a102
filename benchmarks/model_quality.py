"""Compare duckmkt with RFM rules, logistic regression on RFM and BG/NBD + Gamma-Gamma, out of time.

Datasets (from ../shared/data by default):

- cdnow: calibration 1997-01-01..1997-09-30, holdout the next 273 days. The
  model is trained and validated only on labels inside the calibration
  period (90-day labels, stacked training cutoffs), then evaluated on the
  holdout with its amounts scaled to 273 days.
- online_retail: evaluation cutoff 2011-09-10 with a 90-day horizon (the
  last full 90 days of the data); training and validation labels end on or
  before that cutoff.

Run from the repository root:

    python benchmarks/model_quality.py [--datasets cdnow online_retail] [--time-budget 120] [--seed 0]

Databases and models go to a temporary folder that is removed afterwards.
Prints one table per dataset and the target checks.
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
from duckmkt.evaluation.evaluate import METHODS, evaluate
from duckmkt.loading import load_files, read_mappings
from duckmkt.training import train

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

DATASETS = {
    "cdnow": {
        "file": SHARED_DATA / "cdnow" / "CDNOW_master.txt",
        "preset": "cdnow",
        "train": {
            "horizon_days": 90,
            "churn_horizon_days": 90,
            "validation_cutoff": "1997-07-03",
            "train_cutoff": "1997-04-04",
            "n_train_cutoffs": 3,
            "cutoff_step_days": 30,
        },
        "evaluate": {"cutoff": "1997-10-01", "horizon_days": 273},
    },
    "online_retail": {
        "file": SHARED_DATA / "online_retail" / "online_retail.csv.gz",
        "preset": "online_retail",
        "train": {
            "horizon_days": 90,
            "churn_horizon_days": 90,
            "validation_cutoff": "2011-06-12",
            "train_cutoff": "2011-03-14",
            "n_train_cutoffs": 3,
            "cutoff_step_days": 30,
        },
        "evaluate": {"cutoff": "2011-09-10", "horizon_days": 90, "churn_horizon_days": 90},
    },
}

SHOWN = (
    ("purchase", "auc"),
    ("purchase", "lift_10"),
    ("purchase", "lift_20"),
    ("purchase", "log_loss"),
    ("purchase", "ece"),
    ("purchases", "mae"),
    ("purchases", "rmse"),
    ("spend", "mae"),
    ("spend", "rmse"),
    ("spend", "gain_20"),
    ("churn", "auc"),
    ("churn", "log_loss"),
    ("churn", "ece"),
)


def run_dataset(name: str, folder: Path, time_budget: float, seed: int) -> None:
    spec = DATASETS[name]
    con = connect_database(folder / f"{name}.duckdb")
    load_files(con, spec["file"], read_mappings(None, preset=spec["preset"]))

    started = time.perf_counter()
    result = train(
        con, models_dir=folder / "models", name=name, seed=seed, time_budget_seconds=time_budget, **spec["train"]
    )
    train_seconds = time.perf_counter() - started
    evaluation = evaluate(con, result.model_dir, **spec["evaluate"])
    con.close()

    print(f"== {name}: {evaluation.n_rows} customers at {evaluation.cutoff}, horizon {evaluation.horizon_days} days")
    print(f"training: {result.n_train_rows} rows, {train_seconds:.0f} s, settings {spec['train']}")
    print("BG/NBD + Gamma-Gamma parameters: " + ", ".join(f"{k} {v:.4g}" for k, v in evaluation.btyd_params.items()))
    if evaluation.horizon_scale != 1.0:
        print(f"model amounts scaled by {evaluation.horizon_scale:.3f} (evaluation horizon / model horizon)")
    print(f"{'head':<10}{'metric':<10}" + "".join(f"{method:>14}" for method in METHODS) + "   best")
    for head, metric in SHOWN:
        values = [evaluation.metrics.get(method, {}).get(head, {}).get(metric) for method in METHODS]
        if all(value is None for value in values):
            continue
        cells = "".join(f"{value:>14.4f}" if value is not None and value == value else f"{'-':>14}" for value in values)
        print(f"{head:<10}{metric:<10}{cells}   {evaluation.best_method(head, metric)}")
    print()
    check_targets(name, evaluation)


def check_targets(name: str, evaluation) -> None:
    """Print each target of the dataset with the measured values and whether duckmkt reaches it."""
    metrics = evaluation.metrics
    if name == "cdnow":
        targets = [("purchase", "auc", "bgnbd"), ("purchases", "mae", "bgnbd"), ("spend", "mae", "bgnbd")]
    else:
        targets = [
            ("purchase", "auc", method) for method in METHODS[1:]
        ] + [("spend", "mae", method) for method in METHODS[1:] if "spend" in metrics.get(method, {})]
    for head, metric, baseline in targets:
        model_value = metrics["duckmkt"][head][metric]
        baseline_value = metrics[baseline][head][metric]
        better = model_value > baseline_value if metric == "auc" else model_value < baseline_value
        ratio = model_value / baseline_value if baseline_value else float("nan")
        print(
            f"target {name} {head} {metric}: duckmkt {model_value:.4f} vs {baseline} {baseline_value:.4f} "
            f"(ratio {ratio:.3f}) {'MET' if better else 'NOT MET'}"
        )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=sorted(DATASETS))
    parser.add_argument("--time-budget", type=float, default=120.0, help="Seconds of hyperparameter search per dataset.")
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="duckmkt-quality-") as folder:
        for name in arguments.datasets:
            run_dataset(name, Path(folder), arguments.time_budget, arguments.seed)


if __name__ == "__main__":
    main()
