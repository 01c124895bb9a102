"""Drift monitoring: today's features and scores against those at training time.

At training time ``reference_distributions`` stores, per feature and per
head, the interior decile edges of the training values, the share of
training rows in each bin and the missing rate. ``drift_report`` bins
today's values with the same edges and computes for each:

- the population stability index, PSI = sum_i (a_i - e_i) * ln(a_i / e_i),
  with e_i the training share and a_i today's share of bin i, over the
  non-missing values; empty bins count as a share of ``PSI_EPSILON``;
- the change in missing rate, today's minus the training one;
- the share of today's non-missing values outside the training range.

PSI bands follow the common rule of thumb (documented, for example, with
``perf_psi`` of the R package scorecard): below 0.1 stable, 0.1 to 0.25 a
moderate shift, 0.25 and above a significant shift. The thresholds on the
missing rate and the out-of-range share are this project's defaults.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

import duckdb
import numpy as np
import polars as pl

from duckmkt.errors import DataError, ModelError
from duckmkt.i18n import N_, _

logger = logging.getLogger(__name__)

N_BINS = 10
PSI_EPSILON = 1e-4
PSI_MODERATE = 0.10
PSI_SIGNIFICANT = 0.25
# Project defaults, not from the literature: a change of 10 percentage points
# in the missing rate, or 5 % of today's values outside the training range,
# flags a feature.
MISSING_RATE_CHANGE_LIMIT = 0.10
OUT_OF_RANGE_LIMIT = 0.05

RECOMMENDATIONS = {
    "retrain_now": N_("Retrain now: a score or a feature the model relies on has shifted significantly (PSI of 0.25 or more)."),
    "retrain_soon": N_("Retrain soon: some distributions have shifted moderately (PSI from 0.1 to 0.25) or their missing rate or range changed; check them after the next load."),
    "no_action": N_("No retraining needed: every feature and score is stable (PSI below 0.1)."),
}

DRIFT_TABLE = "mkt.drift_report"


def bin_shares(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Return the share of the finite ``values`` in each bin (-inf, e1], (e1, e2], ..., (ek, inf)."""
    finite = values[np.isfinite(values)]
    counts = np.bincount(np.searchsorted(np.asarray(edges, dtype=np.float64), finite, side="left"), minlength=len(edges) + 1)
    total = counts.sum()
    return counts / total if total else np.zeros(len(edges) + 1)


def distribution(values: np.ndarray, n_bins: int = N_BINS) -> dict[str, object]:
    """Return the decile edges, bin shares and missing rate of one column of training values."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    missing_rate = float(1.0 - len(finite) / len(values)) if len(values) else 0.0
    if len(finite) == 0:
        return {"edges": [], "shares": [], "missing_rate": missing_rate}
    quantiles = np.quantile(finite, np.linspace(0, 1, n_bins + 1)[1:-1])
    # Ties (a feature that is 0 for most customers) collapse bins into one.
    edges = np.unique(quantiles)
    return {
        "edges": [float(edge) for edge in edges],
        "shares": [float(share) for share in bin_shares(finite, edges)],
        "missing_rate": missing_rate,
    }


def reference_distributions(
    matrix: np.ndarray, feature_names: Sequence[str], predictions: Mapping[str, np.ndarray]
) -> dict[str, object]:
    """Return the ``reference_distributions`` metadata entry: training distributions per feature and per head."""
    return {
        "n_rows": int(matrix.shape[0]),
        "n_bins": N_BINS,
        "features": {name: distribution(matrix[:, column]) for column, name in enumerate(feature_names)},
        "scores": {head: distribution(np.asarray(values).reshape(-1)) for head, values in predictions.items()},
    }


def population_stability_index(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Return the PSI of two share vectors over the same bins; shares below PSI_EPSILON count as PSI_EPSILON."""
    expected = np.maximum(np.asarray(expected, dtype=np.float64), PSI_EPSILON)
    actual = np.maximum(np.asarray(actual, dtype=np.float64), PSI_EPSILON)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def psi_status(psi: float | None) -> str:
    """Return 'stable', 'moderate' or 'significant' for a PSI, or 'not_monitored' for None."""
    if psi is None:
        return "not_monitored"
    if psi >= PSI_SIGNIFICANT:
        return "significant"
    if psi >= PSI_MODERATE:
        return "moderate"
    return "stable"


@dataclass
class DriftRow:
    """Drift of one feature or head."""

    kind: str
    name: str
    psi: float | None
    status: str
    training_missing_rate: float | None = None
    current_missing_rate: float | None = None
    missing_rate_change: float | None = None
    out_of_range_share: float | None = None
    flags: list[str] = field(default_factory=list)
    training_shares: list[float] = field(default_factory=list)
    current_shares: list[float] = field(default_factory=list)


@dataclass
class DriftReport:
    """Drift of every feature and head, and what to do about it."""

    model_version: str
    training_cutoff: date | None
    current_cutoff: date | None
    n_training_rows: int
    n_current_rows: int
    rows: list[DriftRow]
    recommendation: str

    def flagged(self) -> list[DriftRow]:
        return [row for row in self.rows if row.flags]

    def localized_recommendation(self) -> str:
        return _(RECOMMENDATIONS[self.recommendation])


def feature_drift(
    name: str, reference: Mapping[str, object], values: np.ndarray, value_range: Mapping[str, float | None] | None
) -> DriftRow:
    """Compare today's values of one feature with its training distribution."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    current_missing = float(1.0 - len(finite) / len(values)) if len(values) else 0.0
    training_missing = float(reference["missing_rate"])

    edges = reference["edges"]
    psi = None
    current_shares: list[float] = []
    if reference["shares"] and len(finite):
        current_shares = [float(share) for share in bin_shares(finite, edges)]
        psi = population_stability_index(reference["shares"], current_shares)

    out_of_range = None
    if value_range and value_range.get("min") is not None and len(finite):
        low, high = float(value_range["min"]), float(value_range["max"])
        # The ranges are float32 values; compare in float32 as the model does.
        as_float32 = finite.astype(np.float32)
        out_of_range = float(np.mean((as_float32 < np.float32(low)) | (as_float32 > np.float32(high))))

    row = DriftRow(
        kind="feature",
        name=name,
        psi=psi,
        status=psi_status(psi),
        training_missing_rate=training_missing,
        current_missing_rate=current_missing,
        missing_rate_change=current_missing - training_missing,
        out_of_range_share=out_of_range,
        training_shares=list(reference["shares"]),
        current_shares=current_shares,
    )
    row.flags = _flags(row)
    return row


def score_drift(head: str, reference: Mapping[str, object], values: np.ndarray) -> DriftRow:
    """Compare today's predictions of one head with those on the training rows."""
    current_shares = [float(share) for share in bin_shares(np.asarray(values, dtype=np.float64), reference["edges"])]
    psi = population_stability_index(reference["shares"], current_shares)
    row = DriftRow(
        kind="score",
        name=head,
        psi=psi,
        status=psi_status(psi),
        training_shares=list(reference["shares"]),
        current_shares=current_shares,
    )
    row.flags = _flags(row)
    return row


def _flags(row: DriftRow) -> list[str]:
    flags = []
    if row.status in ("moderate", "significant"):
        flags.append(f"psi_{row.status}")
    if row.missing_rate_change is not None and abs(row.missing_rate_change) >= MISSING_RATE_CHANGE_LIMIT:
        flags.append("missing_rate_change")
    if row.out_of_range_share is not None and row.out_of_range_share >= OUT_OF_RANGE_LIMIT:
        flags.append("out_of_range")
    return flags


def recommend(rows: Sequence[DriftRow]) -> str:
    """Return 'retrain_now', 'retrain_soon' or 'no_action' from the drift rows.

    Retrain now when any head or used feature has PSI >= 0.25; soon when
    anything else is flagged; otherwise no action.
    """
    if any(row.status == "significant" for row in rows):
        return "retrain_now"
    if any(row.flags for row in rows):
        return "retrain_soon"
    return "no_action"


def current_feature_matrix(con: duckdb.DuckDBPyConnection, feature_names: Sequence[str]) -> tuple[np.ndarray, date | None]:
    """Read today's features from ``mkt.customer_features`` as a float32 matrix with NULL as NaN, and their cutoff."""
    frame = con.sql("select * from mkt.customer_features").pl()
    if frame.height == 0:
        raise DataError(_("mkt.customer_features is empty; load order lines with 'duckmkt load' first."))
    missing = [name for name in feature_names if name not in frame.columns]
    if missing:
        raise DataError(
            _("mkt.customer_features has no column {columns}, which the model needs; retrain the model or update the views.").format(
                columns=", ".join(missing)
            )
        )
    matrix = (
        frame.select([pl.col(name).cast(pl.Float32).fill_null(float("nan")) for name in feature_names])
        .to_numpy()
        .astype(np.float32, copy=False)
    )
    cutoff = frame["cutoff_date"].max() if "cutoff_date" in frame.columns else None
    return np.ascontiguousarray(matrix), cutoff


def drift_report(con: duckdb.DuckDBPyConnection, scorer) -> DriftReport:
    """Compare the features and scores of ``mkt.customer_features`` with the training distributions of ``scorer``'s model."""
    metadata = scorer.metadata
    reference = metadata.get("reference_distributions")
    if not isinstance(reference, Mapping):
        raise ModelError(
            _(
                "Model version {version} has no training distributions in its metadata; "
                "retrain it with this duckmkt version to monitor drift."
            ).format(version=scorer.version)
        )

    feature_names = scorer.feature_names
    matrix, current_cutoff = current_feature_matrix(con, feature_names)
    predictions = scorer.predict_matrix(matrix)
    ranges = metadata.get("feature_ranges", {})
    unused = set(metadata.get("unused_features", []))

    rows = []
    for column, name in enumerate(feature_names):
        if name in unused:
            continue
        rows.append(feature_drift(name, reference["features"][name], matrix[:, column], ranges.get(name)))
    head_order = list(metadata.get("output_names", []))
    heads = sorted(reference["scores"], key=lambda head: head_order.index(head) if head in head_order else len(head_order))
    for head in heads:
        if head in predictions:
            rows.append(score_drift(head, reference["scores"][head], predictions[head]))

    train_cutoff = metadata.get("train_cutoff")
    return DriftReport(
        model_version=scorer.version,
        training_cutoff=date.fromisoformat(train_cutoff) if train_cutoff else None,
        current_cutoff=current_cutoff,
        n_training_rows=int(reference["n_rows"]),
        n_current_rows=int(matrix.shape[0]),
        rows=rows,
        recommendation=recommend(rows),
    )


def write_drift_report(con: duckdb.DuckDBPyConnection, report: DriftReport) -> int:
    """Replace ``mkt.drift_report`` with one row per feature and head; return the row count."""
    computed_at = datetime.now(timezone.utc).replace(tzinfo=None)
    frame = pl.DataFrame(
        {
            "kind": [row.kind for row in report.rows],
            "name": [row.name for row in report.rows],
            "psi": [row.psi for row in report.rows],
            "psi_status": [row.status for row in report.rows],
            "training_missing_rate": [row.training_missing_rate for row in report.rows],
            "current_missing_rate": [row.current_missing_rate for row in report.rows],
            "missing_rate_change": [row.missing_rate_change for row in report.rows],
            "out_of_range_share": [row.out_of_range_share for row in report.rows],
            "flags": [row.flags for row in report.rows],
            "model_version": [report.model_version] * len(report.rows),
            "training_cutoff": [report.training_cutoff] * len(report.rows),
            "current_cutoff": [report.current_cutoff] * len(report.rows),
            "recommendation": [report.recommendation] * len(report.rows),
            "computed_at": [computed_at] * len(report.rows),
        },
        schema={
            "kind": pl.String,
            "name": pl.String,
            "psi": pl.Float64,
            "psi_status": pl.String,
            "training_missing_rate": pl.Float64,
            "current_missing_rate": pl.Float64,
            "missing_rate_change": pl.Float64,
            "out_of_range_share": pl.Float64,
            "flags": pl.List(pl.String),
            "model_version": pl.String,
            "training_cutoff": pl.Date,
            "current_cutoff": pl.Date,
            "recommendation": pl.String,
            "computed_at": pl.Datetime("us"),
        },
    )
    con.register("drift_report_frame", frame)
    try:
        # One statement replaces the table, so readers never see half of it.
        con.execute(f"create or replace table {DRIFT_TABLE} as select * from drift_report_frame")
    finally:
        con.unregister("drift_report_frame")
    logger.info("Wrote %d rows to %s", len(report.rows), DRIFT_TABLE)
    return len(report.rows)
