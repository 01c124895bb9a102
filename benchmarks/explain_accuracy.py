"""Accuracy and cost of explain_customer's sampled Shapley values on the full Online Retail data.

Loads the data and trains the customer model. Then, for 16, 64 (the default)
and 256 orderings, it prints the milliseconds per customer over the first
``--timed`` of today's customers. It also prints the largest difference from
shap.KernelExplainer (20,000 coalition samples, same model and background)
on a few customers, relative to each row's largest attribution. The baseline of the timing is one
score_customer pass over the same customers, measured in the same run. Run
from the repository root:

    python benchmarks/explain_accuracy.py [--data PATH] [--epochs N] [--customers N] [--timed N]

Needs the ``test`` extra (shap). The database and the model are written to a
temporary directory that is removed afterwards.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from duckmkt import explain
from duckmkt.database import connect_database
from duckmkt.features import FEATURE_NAMES
from duckmkt.loading import load_orders
from duckmkt.scoring import Scorer
from duckmkt.training import train

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "online_retail" / "online_retail.csv.gz"
ORDERINGS = (16, 64, 256)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Online Retail CSV file (default: %(default)s).")
    parser.add_argument("--epochs", type=int, default=50, help="Maximum training epochs (default: %(default)s).")
    parser.add_argument("--customers", type=int, default=5, help="Customers compared with shap (default: %(default)s).")
    parser.add_argument("--timed", type=int, default=300, help="Customers explained for the timing (default: %(default)s).")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.path.insert(0, str(REPO_ROOT / "tests"))
    from test_explain import shap_kernel_values

    with tempfile.TemporaryDirectory(prefix="duckmkt-benchmark-") as folder:
        con = connect_database(Path(folder) / "online_retail.duckdb")
        load_orders(con, arguments.data)
        result = train(con, models_dir=Path(folder) / "models", epochs=arguments.epochs, seed=0)
        columns = ", ".join(FEATURE_NAMES)
        rows = con.execute(f"select {columns} from mkt.customer_features order by customer_id").fetchall()
        con.close()

        everyone = np.array([[np.nan if value is None else value for value in row] for row in rows], dtype=np.float32)
        matrix = everyone[: arguments.timed]
        scorer = Scorer.load(result.model_dir)
        started = time.perf_counter()
        scorer.predict_matrix(matrix)
        score_ms = (time.perf_counter() - started) * 1000 / len(matrix)

        print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {len(everyone):,} customers today, {len(matrix):,} timed")
        print(f"score_customer model run: {score_ms:.4f} ms per customer (baseline)")
        reference_explainer = explain.explainer_for(scorer)
        sample = matrix[: arguments.customers]
        np.random.seed(0)
        reference = {
            head: [shap_kernel_values(scorer, reference_explainer, row, head, reference_explainer.players, 20_000) for row in sample]
            for head in reference_explainer.heads
        }
        print(f"used features: {len(reference_explainer.players)}, background rows: {len(reference_explainer.background.weights)}")
        print("orderings  ms/customer  x baseline  " + "  ".join(f"max rel. diff {head}" for head in reference_explainer.heads))
        for orderings in ORDERINGS:
            explainer = explain.explainer_for(scorer, n_permutations=orderings)
            started = time.perf_counter()
            explainer.explain(matrix)
            explain_ms = (time.perf_counter() - started) * 1000 / len(matrix)
            attributions = explainer.explain(sample)
            differences = []
            for head in explainer.heads:
                worst = 0.0
                for index in range(len(sample)):
                    expected = reference[head][index]
                    actual = attributions.contributions[head][index, explainer.players]
                    worst = max(worst, float(np.abs(actual - expected).max() / np.abs(expected).max()))
                differences.append(worst)
            print(
                f"{orderings:9d}  {explain_ms:11.2f}  {explain_ms / score_ms:10.0f}  "
                + "  ".join(f"{value:>{len('max rel. diff ') + len(head)}.3f}" for value, head in zip(differences, explainer.heads))
            )


if __name__ == "__main__":
    main()
