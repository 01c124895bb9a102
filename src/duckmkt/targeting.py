"""Targeting under a budget: who to contact, with which action, and the expected net value.

The work is the SQL table macro ``mkt.target_customers(budget,
cost_per_contact, margin)`` (``sql/actions/target_customers.sql``), which
states the assumptions in its header; this module checks the inputs and
the stored scores, and sums the plan.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import duckdb

from duckmkt.errors import DataError, DuckmktError
from duckmkt.i18n import _
from duckmkt.scores import current_rules_fingerprint

logger = logging.getLogger(__name__)

DEFAULT_MARGIN = 0.3

TARGET_COLUMNS = (
    "pick_order",
    "customer_id",
    "strategy",
    "action",
    "reason",
    "expected_spend",
    "incremental_spend",
    "contact_cost",
    "expected_net_value",
    "cumulative_cost",
)


@dataclass
class TargetPlan:
    """The chosen contacts and their totals."""

    rows: list[tuple]
    budget: float
    total_cost: float
    total_incremental_spend: float
    total_net_value: float
    n_candidates: int

    def actions(self) -> dict[str, int]:
        """Return the number of chosen customers per action."""
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row[3]] = counts.get(row[3], 0) + 1
        return counts


class TargetingError(DuckmktError):
    """A targeting option is out of range."""


def target_customers(
    con: duckdb.DuckDBPyConnection, *, budget: float, cost_per_contact: float, margin: float = DEFAULT_MARGIN
) -> TargetPlan:
    """Run ``mkt.target_customers`` and return the plan with its totals.

    Raises TargetingError for a negative budget, a cost per contact that is
    not positive or a margin outside (0, 1], and DataError when
    ``mkt.customer_scores`` is empty or holds strategies assigned by other
    strategy rules than the current ones.
    """
    for option, value in (("--budget", budget), ("--cost-per-contact", cost_per_contact)):
        # NaN fails the range checks below; infinity would pass them.
        if math.isinf(value):
            raise TargetingError(_("{option} is {value}; give a finite number.").format(option=option, value=value))
    if not budget >= 0:
        raise TargetingError(_("--budget is {value}; it must be 0 or more, in the currency of the order lines.").format(value=budget))
    if not cost_per_contact > 0:
        raise TargetingError(_("--cost-per-contact is {value}; it must be more than 0.").format(value=cost_per_contact))
    if not 0 < margin <= 1:
        raise TargetingError(_("--margin is {value}; it must be a share of spend between 0 (excluded) and 1, for example 0.3.").format(value=margin))

    n_scored = con.execute("select count(*) from mkt.customer_scores").fetchall()[0][0]
    if n_scored == 0:
        raise DataError(_("mkt.customer_scores is empty; score the customers with 'duckmkt score DB' first."))
    check_strategies_current(con, n_scored)

    columns = ", ".join(TARGET_COLUMNS)
    rows = con.execute(
        f"select {columns} from mkt.target_customers($budget, $cost, $margin) order by pick_order",
        {"budget": float(budget), "cost": float(cost_per_contact), "margin": float(margin)},
    ).fetchall()
    plan = TargetPlan(
        rows=rows,
        budget=float(budget),
        total_cost=sum(row[7] for row in rows),
        total_incremental_spend=sum(row[6] for row in rows),
        total_net_value=sum(row[8] for row in rows),
        n_candidates=n_scored,
    )
    logger.info("Targeting picked %d of %d customers for %.2f", len(rows), n_scored, plan.total_cost)
    return plan


def check_strategies_current(con: duckdb.DuckDBPyConnection, n_scored: int) -> None:
    """Raise DataError unless every row of ``mkt.customer_scores`` was scored with the current strategy rules.

    The plan values each action by the customer's stored strategy. A plan
    from strategies of edited rules would disagree with
    ``score_customer(f).strategy``, so the scores must be refreshed first.
    """
    has_column = con.execute(
        """
        select count(*) from duckdb_columns()
        where schema_name = 'mkt' and table_name = 'customer_scores' and column_name = 'rules_fingerprint'
        """
    ).fetchall()[0][0]
    if not has_column:
        raise DataError(
            _(
                "mkt.customer_scores does not record which strategy rules assigned its strategies, because an older "
                "duckmkt wrote it; run 'duckmkt score DB' to rescore with the current rules, then run 'duckmkt target' again."
            )
        )

    n_stale = con.execute(
        "select count(*) from mkt.customer_scores where rules_fingerprint is distinct from $current",
        {"current": current_rules_fingerprint(con)},
    ).fetchall()[0][0]
    if n_stale:
        raise DataError(
            _(
                "The strategies of {stale:,} of {total:,} customers in mkt.customer_scores were assigned before the "
                "strategy rules were last edited, so they disagree with score_customer; run 'duckmkt score DB' to "
                "rescore with the current rules, then run 'duckmkt target' again."
            ).format(stale=n_stale, total=n_scored)
        )
