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

    python benchmarks/recommend_online_retail.py [--data PATH] [--db PATH] [--horizon-days 30]

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
from duckmkt.recommend.trainer import INPUT_NAME, OUTPUT_NAME, RecommenderTrainer, check_parity, export_onnx

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "online_retail" / "online_retail.csv.gz"
K = 10


def evaluate(con, horizon_days: int, seed: int) -> None:
    evaluation_cutoff = (data.latest_cutoff(con) - timedelta(days=horizon_days)).date()

    started = time.perf_counter()
    trainer = RecommenderTrainer(horizon_days=horizon_days, seed=seed).fit(con, evaluation_cutoff)
    onnx_bytes = export_onnx(trainer.model_, len(trainer.vocabulary_))
    parity = check_parity(onnx_bytes, trainer, trainer.validation_x_[:512])
    train_seconds = time.perf_counter() - started
    vocabulary = trainer.vocabulary_

    rows = data.read_history(con, evaluation_cutoff, vocabulary)
    targets = data.read_targets(con, evaluation_cutoff, horizon_days, vocabulary, rows.customer_ids)
    keep = (np.asarray(rows.history.sum(axis=1)).ravel() > 0) & (np.asarray(targets.sum(axis=1)).ravel() > 0)
    history, recent, bought, targets = rows.history[keep], rows.recent[keep], rows.bought[keep], targets[keep]

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    model_scores = session.run([OUTPUT_NAME], {INPUT_NAME: history.toarray().astype(np.float32)})[0]

    window = data.read_history(con, evaluation_cutoff, vocabulary, half_life_days=1e9, exclude_recent_days=data.POPULARITY_WINDOW_DAYS)
    popularity = baselines.popularity_scores(window.recent)
    popularity_scores = np.tile(popularity, (history.shape[0], 1))
    co_purchase_scores = baselines.co_purchase_scores(history, baselines.cosine_similarity(bought))

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(
        f"evaluation cutoff {evaluation_cutoff}, horizon {horizon_days} days; {len(vocabulary)} products; "
        f"{trainer.n_train_rows_} training rows, {trainer.n_validation_rows_} validation rows, {trainer.n_epochs_} epochs; "
        f"ONNX parity {parity:.2g}; train + export {train_seconds:.0f} s"
    )
    settings = {
        "all products": (None, targets),
        "excluding recent purchases": (recent, (targets - targets.multiply(recent)).tocsr()),
    }
    methods = {"model (ONNX)": model_scores, "popularity": popularity_scores, "co-purchase": co_purchase_scores}
    for setting, (mask, setting_targets) in settings.items():
        setting_targets.eliminate_zeros()
        n_rows = int((np.asarray(setting_targets.sum(axis=1)).ravel() > 0).sum())
        print()
        print(f"{setting}: {n_rows} customers with a history and at least one target")
        print(f"{'method':<16}{'recall@10':>11}{'NDCG@10':>10}")
        results = {}
        for name, scores in methods.items():
            ranked = metrics.top_k(scores, K, mask)
            results[name] = metrics.recall_and_ndcg(ranked, setting_targets, K)
            print(f"{name:<16}{results[name][0]:>11.4f}{results[name][1]:>10.4f}")
        model_recall, model_ndcg = results["model (ONNX)"]
        for baseline in ("popularity", "co-purchase"):
            recall, ndcg = results[baseline]
            print(f"model / {baseline}: recall x{model_recall / recall:.2f}, NDCG x{model_ndcg / ndcg:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Online Retail CSV file (default: %(default)s).")
    parser.add_argument("--db", type=Path, help="Existing duckmkt database with the order lines loaded.")
    parser.add_argument("--horizon-days", type=int, default=30, help="Days after the cutoff whose purchases are the targets.")
    parser.add_argument("--seed", type=int, default=0, help="Random seed of the recommender.")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    if arguments.db is not None:
        con = connect_database(arguments.db)
        evaluate(con, arguments.horizon_days, arguments.seed)
        con.close()
        return
    with tempfile.TemporaryDirectory(prefix="duckmkt-benchmark-") as folder:
        con = connect_database(Path(folder) / "online_retail.duckdb")
        load_orders(con, arguments.data)
        evaluate(con, arguments.horizon_days, arguments.seed)
        con.close()


if __name__ == "__main__":
    main()
