"""The customer features: names, order, units and descriptions.

The SQL macro ``mkt.customer_features_at(cutoff)`` computes them; this module
is the catalog the model, the scorer and the docs read. The order of
``FEATURES`` is the model's input order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb
import numpy as np

from duckmkt.i18n import N_, _


@dataclass(frozen=True)
class Feature:
    """One model input and how to read it."""

    name: str
    unit: str
    description: str
    # Heavy-tailed, non-negative features are log1p-transformed before scaling.
    log_transform: bool = False
    # Table the feature is computed from, and its formula over rows of that
    # table before the cutoff (the SQL is in sql/features/).
    source: str = ""
    formula: str = ""
    # How the feature's range moves when only the cutoff moves on (see
    # calendar_range): "grows" when the largest possible value grows by the
    # time between the cutoffs, in the feature's unit (days or years);
    # "falls" when the smallest possible value falls to 0, as it does for a
    # customer who stops ordering. None for a feature that changes only with
    # the customer's activity.
    calendar: str | None = None
    # True when every customer's value grows with the cutoff, active or not
    # (time since a fixed date), so the distribution moves on even when no
    # customer changes.
    clock: bool = False

    def localized_description(self) -> str:
        return _(self.description)


FEATURES: tuple[Feature, ...] = (
    Feature("recency_days", "days", N_("Days from the customer's latest order to the cutoff."), True, source="mkt.int_orders", formula="(cutoff - max(ordered_at)) in days", calendar="grows"),
    Feature("tenure_days", "days", N_("Days from the customer's first order to the cutoff."), True, source="mkt.int_orders", formula="(cutoff - min(ordered_at)) in days", calendar="grows", clock=True),
    Feature("frequency", "orders", N_("Number of orders before the cutoff."), True, source="mkt.int_orders", formula="count(orders)"),
    Feature("monetary_value", "currency", N_("Total spend on products before the cutoff."), True, source="mkt.int_orders", formula="sum(order_value)"),
    Feature("avg_order_value", "currency", N_("Mean value of an order."), True, source="mkt.int_orders", formula="avg(order_value)"),
    Feature("max_order_value", "currency", N_("Value of the largest order."), True, source="mkt.int_orders", formula="max(order_value)"),
    Feature(
        "mean_days_between_orders",
        "days",
        N_("Mean number of days between consecutive orders; empty for customers with one order."),
        True,
        source="mkt.int_orders",
        formula="(tenure_days - recency_days) / (frequency - 1) when frequency > 1",
        calendar="grows",
    ),
    Feature("orders_per_month", "orders per 30 days", N_("Orders per 30 days of tenure."), True, source="mkt.int_orders", formula="frequency / greatest(tenure_days, 1) * 30", calendar="falls"),
    Feature("n_orders_30d", "orders", N_("Orders in the 30 days before the cutoff."), True, source="mkt.int_orders", formula="count(orders) with cutoff - ordered_at <= 30 days", calendar="falls"),
    Feature("n_orders_90d", "orders", N_("Orders in the 90 days before the cutoff."), True, source="mkt.int_orders", formula="count(orders) with cutoff - ordered_at <= 90 days", calendar="falls"),
    Feature("spend_30d", "currency", N_("Spend in the 30 days before the cutoff."), True, source="mkt.int_orders", formula="sum(order_value) with cutoff - ordered_at <= 30 days, 0 without orders", calendar="falls"),
    Feature("spend_90d", "currency", N_("Spend in the 90 days before the cutoff."), True, source="mkt.int_orders", formula="sum(order_value) with cutoff - ordered_at <= 90 days, 0 without orders", calendar="falls"),
    Feature("spend_180d", "currency", N_("Spend in the 180 days before the cutoff."), True, source="mkt.int_orders", formula="sum(order_value) with cutoff - ordered_at <= 180 days, 0 without orders", calendar="falls"),
    Feature("n_products", "products", N_("Number of distinct products bought."), True, source="mkt.int_sales", formula="count(distinct product_id)"),
    Feature("avg_items_per_order", "items", N_("Mean number of items in an order."), True, source="mkt.int_orders", formula="avg(n_items)"),
    Feature("avg_unit_price", "currency per item", N_("Mean price paid per item."), True, source="mkt.int_sales", formula="sum(amount) / sum(quantity)"),
    Feature("n_returns", "orders", N_("Number of orders with a cancellation or return."), True, source="mkt.int_returns", formula="count(distinct order_id)"),
    Feature("return_rate", "share", N_("Share of the bought value that was cancelled or returned."), False, source="mkt.int_returns", formula="returned_amount / (monetary_value + returned_amount)"),
    # Browsing, interaction and profile features from mkt.event_features_at. A
    # count is empty when its source has no rows before the cutoff.
    Feature("n_views", "events", N_("Product or page views before the cutoff; empty when browsing is not loaded."), True, source="mkt.stg_events", formula="count(events) with event_type = view"),
    Feature("n_add_to_carts", "events", N_("Add-to-cart events before the cutoff; empty when browsing is not loaded."), True, source="mkt.stg_events", formula="count(events) with event_type = add_to_cart"),
    Feature("n_sessions", "sessions", N_("Distinct browsing sessions; empty when no event has a session id."), True, source="mkt.stg_events", formula="count(distinct session_id)"),
    Feature("days_since_last_view", "days", N_("Days from the latest view to the cutoff; empty without views."), True, source="mkt.stg_events", formula="(cutoff - max(occurred_at of views)) in days", calendar="grows"),
    Feature(
        "view_to_purchase_rate",
        "share",
        N_("Share of viewed products bought at or after their first view; empty without product views."),
        False,
        source="mkt.stg_events",
        formula="viewed products bought at or after their first view / viewed products",
    ),
    Feature("n_email_opens", "events", N_("E-mail opens before the cutoff; empty when interactions are not loaded."), True, source="mkt.stg_interactions", formula="count(interactions) with channel = email and interaction_type = open"),
    Feature("n_email_clicks", "events", N_("E-mail clicks before the cutoff; empty when interactions are not loaded."), True, source="mkt.stg_interactions", formula="count(interactions) with channel = email and interaction_type = click"),
    Feature("n_contacts", "contacts", N_("Marketing contacts of any channel before the cutoff; empty when interactions are not loaded."), True, source="mkt.stg_interactions", formula="count(interactions)"),
    Feature("days_since_last_contact", "days", N_("Days from the latest marketing contact to the cutoff; empty without contacts."), True, source="mkt.stg_interactions", formula="(cutoff - max(occurred_at)) in days", calendar="grows"),
    Feature("age_years", "years", N_("Cutoff year minus the birth year from the customer profile; empty without one."), False, source="mkt.stg_customers", formula="year(cutoff) - birth_year", calendar="grows", clock=True),
    Feature("days_since_signup", "days", N_("Days from sign-up to the cutoff; empty without a sign-up date."), True, source="mkt.stg_customers", formula="(cutoff - signed_up_at) in days", calendar="grows", clock=True),
)

FEATURE_NAMES: tuple[str, ...] = tuple(feature.name for feature in FEATURES)
FEATURES_BY_NAME: dict[str, Feature] = {feature.name: feature for feature in FEATURES}
CLOCK_FEATURES: frozenset[str] = frozenset(feature.name for feature in FEATURES if feature.clock)


def calendar_range(name: str, low: float, high: float, from_cutoff: date, to_cutoff: date) -> tuple[float, float]:
    """Widen the range [low, high] that feature ``name`` had at ``from_cutoff`` by what the calendar alone changes by ``to_cutoff``.

    The order history before a later cutoff is longer, so tenure and the
    days since an event can be larger. The windowed spend and the order
    rate of a customer who stops ordering fall to 0. A value outside the
    widened range cannot come from the passing of time alone. A feature
    without ``calendar``, or a ``to_cutoff`` on or before ``from_cutoff``,
    keeps its range.
    """
    feature = FEATURES_BY_NAME.get(name)
    if feature is None or feature.calendar is None or to_cutoff <= from_cutoff:
        return low, high
    if feature.calendar == "falls":
        return min(low, 0.0), high
    # age_years is a difference of calendar years.
    growth = to_cutoff.year - from_cutoff.year if feature.unit == "years" else (to_cutoff - from_cutoff).days
    # Ranges are stored as float32, rounded to the nearest value, so the
    # bound moves up one more float32 step: the customer at the maximum,
    # aged by exactly the growth, must stay inside.
    return low, float(np.nextafter(np.float32(high + growth), np.float32(np.inf)))

# Columns of the feature views that are not model inputs.
KEY_COLUMNS = ("customer_id", "cutoff_date")


def features_at(con: duckdb.DuckDBPyConnection, cutoff: date | str):
    """Return the features of every customer as of ``cutoff`` as a polars DataFrame."""
    relation = con.sql("select * from mkt.customer_features_at($cutoff::date) order by customer_id", params={"cutoff": str(cutoff)})
    return relation.pl()
