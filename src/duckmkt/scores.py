"""Materialize scores: ``mkt.customer_scores``, one row per customer."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import duckdb

from duckmkt.errors import DataError
from duckmkt.i18n import _

logger = logging.getLogger(__name__)

# One statement replaces the table, so a reader sees the old scores or the
# new ones, never a half-written table.
_SCORE_SQL = """
create or replace table mkt.customer_scores as
with
scored as (
    select f.customer_id, f.cutoff_date, score_customer(f) as score
    from mkt.customer_features as f
)
select
    customer_id,
    cutoff_date,
    score.purchase_prob,
    score.expected_spend,
    score.churn_risk,
    score.strategy,
    score.model_version,
    $scored_at::timestamp as scored_at,
from scored
"""


def write_customer_scores(con: duckdb.DuckDBPyConnection) -> int:
    """Score every row of ``mkt.customer_features`` into ``mkt.customer_scores``.

    ``score_customer`` must be registered on ``con``. Returns the row count.
    """
    n_customers = con.execute("select count(*) from mkt.customer_features").fetchall()[0][0]
    if n_customers == 0:
        raise DataError(_("mkt.customer_features is empty; load order lines with 'duckmkt load' first."))

    scored_at = datetime.now(timezone.utc).replace(tzinfo=None)
    con.execute(_SCORE_SQL, {"scored_at": scored_at})
    logger.info("Scored %d customers into mkt.customer_scores", n_customers)
    return n_customers


def strategy_summary(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """Return (strategy, customers, mean purchase_prob, total expected_spend, mean churn_risk) rows."""
    return con.execute(
        """
        select
            strategy,
            count(*) as n_customers,
            avg(purchase_prob) as avg_purchase_prob,
            sum(expected_spend) as expected_spend,
            avg(churn_risk) as avg_churn_risk,
        from mkt.customer_scores
        group by strategy
        order by n_customers desc
        """
    ).fetchall()
