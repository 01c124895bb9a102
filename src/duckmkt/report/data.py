"""The numbers behind the HTML report, read from a database and a model.

Gain, lift and calibration use the model's out-of-time validation rows: the
customers active before ``validation_cutoff``, with labels over the
following horizon. Early stopping also watched these rows, so the curves
are slightly optimistic. The strategy mix, score distributions and drift use
today's features in ``mkt.customer_features``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

import duckdb
import numpy as np
import polars as pl

from duckmkt import monitor, strategy
from duckmkt.errors import DataError
from duckmkt.i18n import _

logger = logging.getLogger(__name__)

N_DECILES = 10
# Head -> the validation label it predicts.
HEAD_LABELS = {"purchase_prob": "purchased", "expected_spend": "spend", "churn_risk": "churned"}
PROBABILITY_HEADS = ("purchase_prob", "churn_risk")


@dataclass
class Curve:
    """Points of one line of a chart."""

    x: list[float]
    y: list[float]


@dataclass
class ReportData:
    """Everything the report shows."""

    metadata: dict
    n_validation_rows: int
    n_current_rows: int
    gains: dict[str, Curve]
    lifts: dict[str, list[float]]
    calibration: dict[str, Curve]
    importance: dict[str, dict[str, float]]
    strategy_mix: list[tuple[str, int, float]]
    current_scores: dict[str, np.ndarray]
    drift: monitor.DriftReport
    # Label of each code in mkt.strategy_rules, in the active language; an
    # analyst's edit of label_en or label_zh shows up in the report.
    rule_labels: dict[str, str] = field(default_factory=dict)


def validation_rows(
    con: duckdb.DuckDBPyConnection, metadata: Mapping[str, object], feature_names: list[str]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Return the feature matrix and labels of the model's validation cutoff."""
    frame = con.sql(
        """
        select features.*, labels.purchased, labels.spend, labels.churned
        from mkt.customer_features_at($cutoff::date) as features
        inner join mkt.customer_labels_at($cutoff::date, $horizon_days, $churn_horizon_days) as labels
            using (customer_id)
        order by customer_id
        """,
        params={
            "cutoff": str(metadata["validation_cutoff"]),
            "horizon_days": int(metadata["horizon_days"]),
            "churn_horizon_days": int(metadata["churn_horizon_days"]),
        },
    ).pl()
    if frame.height == 0:
        raise DataError(
            _("No customer is active before the validation cutoff {cutoff}; the report needs the data the model was trained on.").format(
                cutoff=metadata["validation_cutoff"]
            )
        )
    matrix = (
        frame.select([pl.col(name).cast(pl.Float32).fill_null(float("nan")) for name in feature_names])
        .to_numpy()
        .astype(np.float32, copy=False)
    )
    labels = {name: frame[name].cast(pl.Float64).to_numpy() for name in ("purchased", "spend", "churned")}
    return np.ascontiguousarray(matrix), labels


def cumulative_gain(scores: np.ndarray, outcome: np.ndarray) -> Curve:
    """Return the share of the total outcome captured by the top x share of customers ranked by score."""
    order = np.argsort(-scores, kind="stable")
    captured = np.cumsum(outcome[order])
    total = captured[-1] if len(captured) else 0.0
    x = np.arange(len(scores) + 1) / max(len(scores), 1)
    y = np.concatenate([[0.0], captured / total]) if total > 0 else np.zeros(len(scores) + 1)
    # At most about 200 points keep the inline chart data small.
    step = max(1, len(x) // 200)
    keep = np.unique(np.concatenate([np.arange(0, len(x), step), [len(x) - 1]]))
    return Curve(x=x[keep].tolist(), y=y[keep].tolist())


def decile_lift(scores: np.ndarray, outcome: np.ndarray) -> list[float]:
    """Return the mean outcome of each score decile (highest first) divided by the overall mean."""
    order = np.argsort(-scores, kind="stable")
    overall = float(np.mean(outcome)) if len(outcome) else 0.0
    groups = np.array_split(outcome[order], N_DECILES)
    return [float(np.mean(group)) / overall if overall > 0 and len(group) else 0.0 for group in groups]


def calibration_curve(probabilities: np.ndarray, outcome: np.ndarray) -> Curve:
    """Return mean predicted probability against observed rate in ten equal-count bins."""
    order = np.argsort(probabilities, kind="stable")
    groups = [group for group in np.array_split(order, N_DECILES) if len(group)]
    return Curve(
        x=[float(np.mean(probabilities[group])) for group in groups],
        y=[float(np.mean(outcome[group])) for group in groups],
    )


def current_scores(con: duckdb.DuckDBPyConnection) -> tuple[dict[str, np.ndarray], list[tuple[str, int, float]]]:
    """Score today's customers with ``score_customer`` (registered on ``con``); return scores and the strategy mix."""
    frame = con.sql(
        """
        with scored as (
            select score_customer(f) as score from mkt.customer_features as f
        )
        select score.purchase_prob, score.expected_spend, score.churn_risk, score.strategy
        from scored
        """
    ).pl()
    scores = {head: frame[head].cast(pl.Float64).to_numpy() for head in HEAD_LABELS}
    mix = (
        frame.group_by("strategy")
        .agg(pl.len().alias("n_customers"), pl.col("expected_spend").sum().alias("expected_spend"))
        .sort("n_customers", descending=True)
    )
    return scores, [(row[0], int(row[1]), float(row[2])) for row in mix.iter_rows()]


def collect(con: duckdb.DuckDBPyConnection, scorer) -> ReportData:
    """Gather the report's numbers; ``score_customer`` must be registered on ``con`` with ``scorer``."""
    metadata = scorer.metadata
    matrix, labels = validation_rows(con, metadata, scorer.feature_names)
    predictions = scorer.predict_matrix(matrix)

    gains = {head: cumulative_gain(predictions[head], labels[label]) for head, label in HEAD_LABELS.items()}
    lifts = {head: decile_lift(predictions[head], labels[label]) for head, label in HEAD_LABELS.items()}
    calibration = {head: calibration_curve(predictions[head], labels[HEAD_LABELS[head]]) for head in PROBABILITY_HEADS}

    scores, mix = current_scores(con)
    drift = monitor.drift_report(con, scorer)
    importance = metadata.get("global_importance", {}).get("values", {})
    return ReportData(
        metadata=metadata,
        n_validation_rows=int(matrix.shape[0]),
        n_current_rows=len(next(iter(scores.values()))),
        gains=gains,
        lifts=lifts,
        calibration=calibration,
        importance={head: importance[head] for head in HEAD_LABELS if head in importance},
        strategy_mix=mix,
        current_scores=scores,
        drift=drift,
        rule_labels=rule_labels(con),
    )


def rule_labels(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Return the label of each rule in mkt.strategy_rules in the active language; empty without the table."""
    try:
        rules = strategy.read_rules(con)
    except duckdb.CatalogException:
        return {}
    return {rule.code: rule.localized_label() for rule in rules}


def report_date(data: ReportData) -> date | None:
    return data.drift.current_cutoff
