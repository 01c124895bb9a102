"""Drift monitoring: today's features and scores against those when the model was trained.

At training time ``reference_distributions`` stores, per feature and per
head, the interior decile edges of the reference values, the share of the
reference rows in each bin, the missing rate and the range. The reference
rows are the customers of ``mkt.customer_features`` when the model was
trained, at the day after the latest sale, which is what ``duckmkt score``
scores right after ``duckmkt train``. ``drift_report`` bins today's values
with the same edges and computes for each:

- the population stability index, PSI = sum_i (a_i - e_i) * ln(a_i / e_i),
  with e_i the reference share and a_i today's share of bin i, over the
  non-missing values; empty bins count as a share of ``PSI_EPSILON``;
- the change in missing rate, today's minus the reference one;
- the share of today's non-missing values outside the reference range.

Why not the training rows: features are computed as of a cutoff, and with
the default windows the training cutoff is two churn horizons (240 days)
before the scoring cutoff. Tenure, recency and every count over the whole
history differ between the two cutoffs even when no customer changes. So
against the training rows nearly every feature and score is flagged right
after training, and a retrain with the same windows keeps the gap. The
validation rows are one churn horizon closer, but on the full Online
Retail data recency_days still has a PSI of 0.155 against them
(scripts/monitor_reference_drift.py). The reference taken when the model
was trained measures what a retrain could change: the data loaded since.
NOTE: a difference between the training rows and the customers that
already existed when the model was trained is not reported here. The
per-score ``out_of_range_features`` (``duckmkt.score_flags``) still compare
each customer with the training range.

Later cutoffs still move some features by construction, and
``features.calendar_range`` describes how. The range check widens their
range by what the days since the reference cutoff explain. Clock features
(``features.CLOCK_FEATURES``, such as tenure_days) grow for every customer,
so their PSI measures the calendar more than the customers. They get the
status 'calendar', and their PSI is reported but does not count toward the
recommendation. A shift of the customers still shows in the activity
features and in the scores, which are judged as usual.

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
from duckmkt.features import CLOCK_FEATURES, calendar_range
from duckmkt.i18n import N_, _

logger = logging.getLogger(__name__)

N_BINS = 10
PSI_EPSILON = 1e-4
PSI_MODERATE = 0.10
PSI_SIGNIFICANT = 0.25
# Project defaults, not from the literature: a change of 10 percentage points
# in the missing rate, or 5 % of today's values outside the reference range,
# flags a feature.
MISSING_RATE_CHANGE_LIMIT = 0.10
OUT_OF_RANGE_LIMIT = 0.05

RECOMMENDATIONS = {
    "retrain_now": N_("Retrain now: a score or a feature the model relies on has shifted significantly (PSI of 0.25 or more)."),
    "retrain_soon": N_("Retrain soon: some distributions have shifted moderately (PSI from 0.1 to 0.25) or their missing rate or range changed; check them after the next load."),
    "no_action": N_("No retraining needed: every score and every feature judged by PSI is stable (PSI below 0.1), and none is flagged."),
}

DRIFT_TABLE = "mkt.drift_report"


def bin_shares(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Return the share of the finite ``values`` in each bin (-inf, e1], (e1, e2], ..., (ek, inf)."""
    finite = values[np.isfinite(values)]
    counts = np.bincount(np.searchsorted(np.asarray(edges, dtype=np.float64), finite, side="left"), minlength=len(edges) + 1)
    total = counts.sum()
    return counts / total if total else np.zeros(len(edges) + 1)


def distribution(values: np.ndarray, n_bins: int = N_BINS) -> dict[str, object]:
    """Return the decile edges, bin shares, missing rate and range of one column of reference values."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    missing_rate = float(1.0 - len(finite) / len(values)) if len(values) else 0.0
    if len(finite) == 0:
        return {"edges": [], "shares": [], "missing_rate": missing_rate, "min": None, "max": None}
    quantiles = np.quantile(finite, np.linspace(0, 1, n_bins + 1)[1:-1])
    # Ties (a feature that is 0 for most customers) collapse bins into one.
    edges = np.unique(quantiles)
    # The range is kept in float32, the precision the model and today's
    # feature matrix have, so a reference value is never outside it.
    return {
        "edges": [float(edge) for edge in edges],
        "shares": [float(share) for share in bin_shares(finite, edges)],
        "missing_rate": missing_rate,
        "min": float(np.float32(finite.min())),
        "max": float(np.float32(finite.max())),
    }


def reference_distributions(
    matrix: np.ndarray, feature_names: Sequence[str], predictions: Mapping[str, np.ndarray], cutoff: date
) -> dict[str, object]:
    """Return the ``reference_distributions`` metadata entry: distributions per feature and per head on the rows at ``cutoff``."""
    return {
        "cutoff": cutoff.isoformat(),
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
    reference_missing_rate: float | None = None
    current_missing_rate: float | None = None
    missing_rate_change: float | None = None
    out_of_range_share: float | None = None
    flags: list[str] = field(default_factory=list)
    reference_shares: list[float] = field(default_factory=list)
    current_shares: list[float] = field(default_factory=list)


@dataclass
class DriftReport:
    """Drift of every feature and head, and what to do about it."""

    model_version: str
    training_cutoff: date | None
    # Cutoff of the reference rows: the day after the latest sale when the
    # model was trained, or the training cutoff for a model whose reference
    # was its training rows.
    reference_cutoff: date | None
    current_cutoff: date | None
    n_reference_rows: int
    n_current_rows: int
    rows: list[DriftRow]
    recommendation: str

    def flagged(self) -> list[DriftRow]:
        return [row for row in self.rows if row.flags]

    def localized_recommendation(self) -> str:
        return _(RECOMMENDATIONS[self.recommendation])


def feature_drift(
    name: str,
    reference: Mapping[str, object],
    values: np.ndarray,
    value_range: Mapping[str, float | None] | None,
    *,
    clock: bool = False,
) -> DriftRow:
    """Compare today's values of one feature with its reference distribution.

    ``value_range`` is the range a value may have today (see
    ``reference_range``). A ``clock`` feature gets the status 'calendar'
    instead of a PSI band, so its PSI raises no flag.
    """
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    current_missing = float(1.0 - len(finite) / len(values)) if len(values) else 0.0
    reference_missing = float(reference["missing_rate"])

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
        status="calendar" if clock and psi is not None else psi_status(psi),
        reference_missing_rate=reference_missing,
        current_missing_rate=current_missing,
        missing_rate_change=current_missing - reference_missing,
        out_of_range_share=out_of_range,
        reference_shares=list(reference["shares"]),
        current_shares=current_shares,
    )
    row.flags = _flags(row)
    return row


def score_drift(head: str, reference: Mapping[str, object], values: np.ndarray) -> DriftRow:
    """Compare today's predictions of one head with those on the reference rows."""
    current_shares = [float(share) for share in bin_shares(np.asarray(values, dtype=np.float64), reference["edges"])]
    psi = population_stability_index(reference["shares"], current_shares)
    row = DriftRow(
        kind="score",
        name=head,
        psi=psi,
        status=psi_status(psi),
        reference_shares=list(reference["shares"]),
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

    Retrain now when any head or used feature has PSI >= 0.25 (a clock
    feature has the status 'calendar' instead); soon when anything else is
    flagged; otherwise no action.
    """
    if any(row.status == "significant" for row in rows):
        return "retrain_now"
    if any(row.flags for row in rows):
        return "retrain_soon"
    return "no_action"


def reference_range(
    name: str,
    reference: Mapping[str, object],
    training_range: Mapping[str, float | None] | None,
    reference_cutoff: date | None,
    current_cutoff: date | None,
) -> dict[str, float | None] | None:
    """Return the range today's values of feature ``name`` may have: the reference range, widened for the calendar.

    A model saved before the reference entries had a range falls back to
    the training range ``training_range``, which is that of its reference
    rows.
    """
    bounds = reference if reference.get("min") is not None else training_range
    if not bounds or bounds.get("min") is None:
        return None
    low, high = float(bounds["min"]), float(bounds["max"])
    if reference_cutoff is not None and current_cutoff is not None:
        low, high = calendar_range(name, low, high, reference_cutoff, current_cutoff)
    return {"min": low, "max": high}


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
    """Compare the features and scores of ``mkt.customer_features`` with the reference distributions of ``scorer``'s model."""
    metadata = scorer.metadata
    reference = metadata.get("reference_distributions")
    if not isinstance(reference, Mapping):
        raise ModelError(
            _(
                "Model version {version} has no reference distributions in its metadata; "
                "retrain it with this duckmkt version to monitor drift."
            ).format(version=scorer.version)
        )

    feature_names = scorer.feature_names
    matrix, current_cutoff = current_feature_matrix(con, feature_names)
    predictions = scorer.predict_matrix(matrix)
    ranges = metadata.get("feature_ranges", {})
    unused = set(metadata.get("unused_features", []))
    training_cutoff = _parse_date(metadata.get("train_cutoff"))
    # Models whose reference is their training rows have no cutoff in the
    # entry.
    reference_cutoff = _parse_date(reference.get("cutoff")) or training_cutoff

    rows = []
    for column, name in enumerate(feature_names):
        if name in unused:
            continue
        entry = reference["features"][name]
        value_range = reference_range(name, entry, ranges.get(name), reference_cutoff, current_cutoff)
        rows.append(feature_drift(name, entry, matrix[:, column], value_range, clock=name in CLOCK_FEATURES))
    head_order = list(metadata.get("output_names", []))
    heads = sorted(reference["scores"], key=lambda head: head_order.index(head) if head in head_order else len(head_order))
    for head in heads:
        if head in predictions:
            rows.append(score_drift(head, reference["scores"][head], predictions[head]))

    return DriftReport(
        model_version=scorer.version,
        training_cutoff=training_cutoff,
        reference_cutoff=reference_cutoff,
        current_cutoff=current_cutoff,
        n_reference_rows=int(reference["n_rows"]),
        n_current_rows=int(matrix.shape[0]),
        rows=rows,
        recommendation=recommend(rows),
    )


def _parse_date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def write_drift_report(con: duckdb.DuckDBPyConnection, report: DriftReport) -> int:
    """Replace ``mkt.drift_report`` with one row per feature and head; return the row count."""
    computed_at = datetime.now(timezone.utc).replace(tzinfo=None)
    frame = pl.DataFrame(
        {
            "kind": [row.kind for row in report.rows],
            "name": [row.name for row in report.rows],
            "psi": [row.psi for row in report.rows],
            "psi_status": [row.status for row in report.rows],
            "reference_missing_rate": [row.reference_missing_rate for row in report.rows],
            "current_missing_rate": [row.current_missing_rate for row in report.rows],
            "missing_rate_change": [row.missing_rate_change for row in report.rows],
            "out_of_range_share": [row.out_of_range_share for row in report.rows],
            "flags": [row.flags for row in report.rows],
            "model_version": [report.model_version] * len(report.rows),
            "training_cutoff": [report.training_cutoff] * len(report.rows),
            "reference_cutoff": [report.reference_cutoff] * len(report.rows),
            "current_cutoff": [report.current_cutoff] * len(report.rows),
            "recommendation": [report.recommendation] * len(report.rows),
            "computed_at": [computed_at] * len(report.rows),
        },
        schema={
            "kind": pl.String,
            "name": pl.String,
            "psi": pl.Float64,
            "psi_status": pl.String,
            "reference_missing_rate": pl.Float64,
            "current_missing_rate": pl.Float64,
            "missing_rate_change": pl.Float64,
            "out_of_range_share": pl.Float64,
            "flags": pl.List(pl.String),
            "model_version": pl.String,
            "training_cutoff": pl.Date,
            "reference_cutoff": pl.Date,
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
