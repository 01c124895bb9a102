"""Print the feature drift 'duckmkt monitor' would report against references at several cutoffs.

Loads the full UCI Online Retail data and compares the features of
``mkt.customer_features`` (the day after the latest sale) with those at
earlier cutoffs, as a model trained then would store them. The cutoffs are
the default training cutoff (240 days earlier), the default validation
cutoff (120 days earlier), 60 days earlier and the same day. No model is
trained, so no score is compared. docs/monitoring.md quotes the output.

Usage: python scripts/monitor_reference_drift.py [SOURCE_CSV_GZ]
"""

from __future__ import annotations

import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import numpy as np

from duckmkt import monitor
from duckmkt.database import connect_database
from duckmkt.features import CLOCK_FEATURES, FEATURE_NAMES
from duckmkt.loading import load_orders

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "data" / "online_retail" / "online_retail.csv.gz"
REFERENCES = (("the training cutoff", 240), ("the validation cutoff", 120), ("60 days earlier", 60), ("today's cutoff", 0))


def feature_matrix(con, cutoff) -> np.ndarray:
    columns = ", ".join(FEATURE_NAMES)
    rows = con.execute(f"select {columns} from mkt.customer_features_at($cutoff::date)", {"cutoff": cutoff}).fetchall()
    return np.array([[np.nan if value is None else value for value in row] for row in rows], dtype=np.float32)


def drift_rows(con, reference_cutoff, current_cutoff, current: np.ndarray) -> list[monitor.DriftRow]:
    reference = feature_matrix(con, reference_cutoff)
    rows = []
    for column, name in enumerate(FEATURE_NAMES):
        entry = monitor.distribution(reference[:, column])
        if not entry["shares"]:
            continue
        value_range = monitor.reference_range(name, entry, None, reference_cutoff, current_cutoff)
        rows.append(monitor.feature_drift(name, entry, current[:, column], value_range, clock=name in CLOCK_FEATURES))
    return rows


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE
    with tempfile.TemporaryDirectory() as folder:
        con = connect_database(Path(folder) / "online_retail.duckdb")
        load_orders(con, source)
        current_cutoff = con.execute("select max(cutoff_date) from mkt.customer_features").fetchall()[0][0]
        current = feature_matrix(con, current_cutoff)
        print(f"Today's cutoff {current_cutoff}, {current.shape[0]:,} customers.")
        for label, days in REFERENCES:
            reference_cutoff = current_cutoff - timedelta(days=days)
            rows = drift_rows(con, reference_cutoff, current_cutoff, current)
            flagged = [f"{row.name} ({', '.join(row.flags)})" for row in rows if row.flags]
            print()
            print(f"Reference at {label}, {reference_cutoff}: recommendation from the features {monitor.recommend(rows)}")
            for row in rows:
                out_of_range = f"{row.out_of_range_share:.3f}" if row.out_of_range_share is not None else "-"
                print(f"  {row.name:26s} PSI {row.psi:6.3f}  {row.status:11s}  out of range {out_of_range}")
            print(f"  flagged: {'; '.join(flagged) if flagged else 'none'}")
        con.close()


if __name__ == "__main__":
    main()
