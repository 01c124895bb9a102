"""Evaluate the product recommender out of time on the full Online Retail data.

The recommender is trained only on rows whose targets end before the
evaluation cutoff (the day after the latest sale minus --horizon-days). Every
method then ranks products for each customer with a purchase history at the
cutoff, and recall@10 and NDCG@10 are measured on the products the customer
buys in the following --horizon-days. The popularity and item-to-item
co-purchase baselines use the same history rows. Two settings:

* all products: nothing is excluded, so repeat purchases count;
* excluding recent purchases: products bought in the 30 days before the
  cutoff are neither recommended nor counted as targets, as
  recommend_products does by default.

Run from the repository root:

    python benchmarks/recommend_online_retail.py [--data PATH] [--db PATH] [--horizon-days 30] [--seeds 0 1 2]

The model is trained once per seed on the same rows (the SQL runs once), and
the figures are printed per seed, then as the mean and the sample standard
deviation over seeds. The baselines are deterministic.

Without --db the database is built in a temporary directory.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import onnxruntime as ort

from duckmkt.database import connect_database
from duckmkt.loading import load_orders
from duckmkt.recommend import baselines, data, metrics
from duckmkt.recommend.trainer import OUTPUT_NAME, RecommenderTrainer, check_parity, export_onnx, parity_inputs

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "online_retail" / "online_retail.csv.gz"
K = 10
SETTINGS = ("all products", "excluding recent purchases")


def evaluate(con, horizon_days: int, seeds: list[int]) -> None:
    evaluation_cutoff = (data.latest_cutoff(con) - timedelta(days=horizon_days)).date()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")

    started = time.perf_counter()
    first = RecommenderTrainer(horizon_days=horizon_days, seed=seeds[0]).fit(con, evaluation_cutoff)
    prepared_seconds = time.perf_counter() - started
    vocabulary = first.vocabulary_

    rows = data.read_history(con, evaluation_cutoff, vocabulary)
    targets = data.read_targets(con, evaluation_cutoff, horizon_days, vocabulary, rows.customer_ids)
    # The co-purchase similarity uses every customer's purchases before the
    # cutoff, as the model's does, not only those of the evaluated customers.
    similarity = baselines.cosine_similarity(rows.bought)
    keep = (np.asarray(rows.history.sum(axis=1)).ravel() > 0) & (np.asarray(targets.sum(axis=1)).ravel() > 0)
    rows, targets = rows.select(keep), targets[keep]
    inputs = rows.model_inputs()
    inputs["popularity"] = data.read_popularity(con, evaluation_cutoff, vocabulary)

    window = data.read_history(con, evaluation_cutoff, vocabulary, half_life_days=1e9, exclude_recent_days=data.POPULARITY_WINDOW_DAYS)
    popularity = baselines.popularity_scores(window.recent)
    baseline_scores = {
        "popularity": np.tile(popularity, (rows.history.shape[0], 1)),
        "co-purchase": baselines.co_purchase_scores(rows.history, similarity),
    }
    settings = {
        "all products": (None, targets),
        "excluding recent purchases": (rows.recent, (targets - targets.multiply(rows.recent)).tocsr()),
    }
    for _mask, setting_targets in settings.values():
        setting_targets.eliminate_zeros()

    def score(scores: np.ndarray) -> dict[str, tuple[float, float]]:
        return {
            setting: metrics.recall_and_ndcg(metrics.top_k(scores, K, mask), setting_targets, K)
            for setting, (mask, setting_targets) in settings.items()
        }

    print(
        f"evaluation cutoff {evaluation_cutoff}, horizon {horizon_days} days; {len(vocabulary)} products; "
        f"{first.n_train_rows_} training rows, {first.n_validation_rows_} validation rows"
    )
    for setting, (_mask, setting_targets) in settings.items():
        n_rows = int((np.asarray(setting_targets.sum(axis=1)).ravel() > 0).sum())
        print(f"{setting}: {n_rows} customers with a history and at least one target")

    model_results = []
    for seed in seeds:
        started = time.perf_counter()
        trainer = first if seed == seeds[0] else first.refit_with_seed(seed)
        onnx_bytes = export_onnx(trainer.model_, trainer.similarity_)
        parity = check_parity(onnx_bytes, trainer, parity_inputs(trainer))
        seconds = time.perf_counter() - started + (prepared_seconds if seed == seeds[0] else 0.0)
        session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
        model_results.append(score(session.run([OUTPUT_NAME], inputs)[0]))
        print(
            f"seed {seed}: {trainer.n_epochs_} epochs, ONNX parity {parity:.2g}, ONNX size {len(onnx_bytes) / 1e6:.0f} MB, "
            f"train + export {seconds:.0f} s (the first seed includes reading the rows)"
        )

    results = {name: score(scores) for name, scores in baseline_scores.items()}
    print()
    print(f"{'setting':<28}{'method':<22}{'recall@10':>11}{'NDCG@10':>10}")
    for setting in SETTINGS:
        for seed, result in zip(seeds, model_results):
            recall, ndcg = result[setting]
            print(f"{setting:<28}{f'model (ONNX), seed {seed}':<22}{recall:>11.4f}{ndcg:>10.4f}")
        recalls = np.array([result[setting][0] for result in model_results])
        ndcgs = np.array([result[setting][1] for result in model_results])
        spread = (lambda values: values.std(ddof=1) if len(values) > 1 else 0.0)
        print(
            f"{setting:<28}{'model (ONNX), mean':<22}{recalls.mean():>11.4f}{ndcgs.mean():>10.4f}"
            f"   (sd {spread(recalls):.4f}, {spread(ndcgs):.4f}; min {recalls.min():.4f}, {ndcgs.min():.4f})"
        )
        for name in baseline_scores:
            recall, ndcg = results[name][setting]
            print(f"{setting:<28}{name:<22}{recall:>11.4f}{ndcg:>10.4f}")
        for name in baseline_scores:
            recall, ndcg = results[name][setting]
            print(
                f"{setting:<28}model mean / {name}: recall x{recalls.mean() / recall:.3f}, NDCG x{ndcgs.mean() / ndcg:.3f}; "
                f"worst seed: recall x{recalls.min() / recall:.3f}, NDCG x{ndcgs.min() / ndcg:.3f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Online Retail CSV file (default: %(default)s).")
    parser.add_argument("--db", type=Path, help="Existing duckmkt database with the order lines loaded.")
    parser.add_argument("--horizon-days", type=int, default=30, help="Days after the cutoff whose purchases are the targets.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="Random seeds of the recommender, one model each.")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    if arguments.db is not None:
        con = connect_database(arguments.db)
        evaluate(con, arguments.horizon_days, arguments.seeds)
        con.close()
        return
    with tempfile.TemporaryDirectory(prefix="duckmkt-benchmark-") as folder:
        con = connect_database(Path(folder) / "online_retail.duckdb")
        load_orders(con, arguments.data)
        evaluate(con, arguments.horizon_days, arguments.seeds)
        con.close()


if __name__ == "__main__":
    main()
