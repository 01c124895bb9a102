"""Check the uplift model on a simulated campaign over the real Online Retail customers.

Every customer with an order before --cutoff is put in the treatment group
with probability 0.5. The control outcome is real (a purchase in the 60 days
after the cutoff); the treated outcome is changed at random by the effect of
the customer's segment (duckmkt.uplift.SIMULATED_EFFECTS). The script prints
the effect recovered per segment and, on held-out customers, the Qini
coefficient and the uplift at the top 10 % and 30 % for ranking by modeled
uplift, by response probability and at random. Run from the repository root:

    python benchmarks/uplift_simulation.py [--data PATH] [--db PATH] [--seeds 5]

--db names an existing duckmkt database with the order lines loaded; the
script works on a copy of it. Without --db the data is loaded into a
temporary directory.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np

from duckmkt import uplift
from duckmkt.database import connect_database
from duckmkt.loading import load_orders

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "online_retail" / "online_retail.csv.gz"


def run(path: Path, cutoff: str, seeds: int) -> None:
    con = duckdb.connect(str(path))
    started = time.perf_counter()
    recovered: dict[str, list[float]] = {}
    observed: dict[str, list[float]] = {}
    results: dict[str, dict[str, list[float]]] = {}
    for seed in range(seeds):
        con.execute("delete from raw.interactions where campaign_id = 'simulated'")
        simulation = uplift.simulate_campaign(con, cutoff=cutoff, seed=seed)
        rows = uplift.read_campaign(con, simulation.campaign_id)
        segments = np.array([simulation.segments[customer] for customer in rows.customer_ids])
        model = uplift.TLearnerUplift().fit(rows.features, rows.treatment, rows.responded)
        predicted = model.predict_uplift(rows.features)
        for segment in simulation.effects:
            members = segments == segment
            treated, responded = rows.treatment[members], rows.responded[members]
            recovered.setdefault(segment, []).append(float(predicted[members].mean()))
            observed.setdefault(segment, []).append(float(responded[treated].mean() - responded[~treated].mean()))
        _model, evaluation, _test = uplift.evaluate_campaign(rows, seed=seed)
        for method, values in evaluation.methods.items():
            for metric, value in values.items():
                results.setdefault(method, {}).setdefault(metric, []).append(value)
    con.close()

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"cutoff {cutoff}, {len(rows.customer_ids)} customers, {seeds} simulations, {time.perf_counter() - started:.0f} s")
    print()
    print("effect per segment (mean over simulations; observed = treated minus control response rate)")
    print(f"{'segment':<14}{'customers':>10}{'true':>8}{'observed':>10}{'modeled':>10}")
    for segment, effect in uplift.SIMULATED_EFFECTS.items():
        print(
            f"{segment:<14}{int((segments == segment).sum()):>10}{effect:>8.3f}"
            f"{np.mean(observed[segment]):>10.3f}{np.mean(recovered[segment]):>10.3f}"
        )
    print()
    print("held-out evaluation (mean over simulations)")
    print(f"{'ranking':<10}{'Qini':>10}{'uplift@10%':>12}{'uplift@30%':>12}")
    for method, values in results.items():
        print(f"{method:<10}{np.mean(values['qini']):>10.4f}{np.mean(values['uplift_at_10']):>12.3f}{np.mean(values['uplift_at_30']):>12.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Online Retail CSV file (default: %(default)s).")
    parser.add_argument("--db", type=Path, help="Existing duckmkt database with the order lines loaded (copied, not changed).")
    parser.add_argument("--cutoff", default="2011-09-01", help="Campaign date, YYYY-MM-DD (default: %(default)s).")
    parser.add_argument("--seeds", type=int, default=5, help="Number of simulations (default: %(default)s).")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    with tempfile.TemporaryDirectory(prefix="duckmkt-benchmark-") as folder:
        path = Path(folder) / "online_retail.duckdb"
        if arguments.db is not None:
            shutil.copy(arguments.db, path)
            connect_database(path).close()
        else:
            con = connect_database(path)
            load_orders(con, arguments.data)
            con.close()
        run(path, arguments.cutoff, arguments.seeds)


if __name__ == "__main__":
    main()
