"""The customer features: names, order, units and descriptions.

The SQL macro ``mkt.customer_features_at(cutoff)`` computes them; this module
is the catalog the model, the scorer and the docs read. The order of
``FEATURES`` is the model's input order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb

from duckmkt.i18n import N_, _


@dataclass(frozen=True)
class Feature:
    """One model input and how to read it."""

    name: str
    unit: str
    description: str
    # Heavy-tailed, non-negative features are log1p-transformed before scaling.
    log_transform: bool = False

    def localized_description(self) -> str:
        return _(self.description)


FEATURES: tuple[Feature, ...] = (
    Feature("recency_days", "days", N_("Days from the customer's latest order to the cutoff."), True),
    Feature("tenure_days", "days", N_("Days from the customer's first order to the cutoff."), True),
    Feature("frequency", "orders", N_("Number of orders before the cutoff."), True),
    Feature("monetary_value", "currency", N_("Total spend on products before the cutoff."), True),
    Feature("avg_order_value", "currency", N_("Mean value of an order."), True),
    Feature("max_order_value", "currency", N_("Value of the largest order."), True),
    Feature(
        "mean_days_between_orders",
        "days",
        N_("Mean number of days between consecutive orders; empty for customers with one order."),
        True,
    ),
    Feature("orders_per_month", "orders per 30 days", N_("Orders per 30 days of tenure."), True),
    Feature("n_orders_30d", "orders", N_("Orders in the 30 days before the cutoff."), True),
    Feature("n_orders_90d", "orders", N_("Orders in the 90 days before the cutoff."), True),
    Feature("spend_30d", "currency", N_("Spend in the 30 days before the cutoff."), True),
    Feature("spend_90d", "currency", N_("Spend in the 90 days before the cutoff."), True),
    Feature("spend_180d", "currency", N_("Spend in the 180 days before the cutoff."), True),
    Feature("n_products", "products", N_("Number of distinct products bought."), True),
    Feature("avg_items_per_order", "items", N_("Mean number of items in an order."), True),
    Feature("avg_unit_price", "currency per item", N_("Mean price paid per item."), True),
    Feature("n_returns", "orders", N_("Number of orders with a cancellation or return."), True),
    Feature("return_rate", "share", N_("Share of the bought value that was cancelled or returned."), False),
    # Browsing, interaction and profile features from mkt.event_features_at. A
    # count is empty when its source has no rows before the cutoff.
    Feature("n_views", "events", N_("Product or page views before the cutoff; empty when browsing is not loaded."), True),
    Feature("n_add_to_carts", "events", N_("Add-to-cart events before the cutoff; empty when browsing is not loaded."), True),
    Feature("n_sessions", "sessions", N_("Distinct browsing sessions; empty when no event has a session id."), True),
    Feature("days_since_last_view", "days", N_("Days from the latest view to the cutoff; empty without views."), True),
    Feature(
        "view_to_purchase_rate",
        "share",
        N_("Share of viewed products bought at or after their first view; empty without product views."),
        False,
    ),
    Feature("n_email_opens", "events", N_("E-mail opens before the cutoff; empty when interactions are not loaded."), True),
    Feature("n_email_clicks", "events", N_("E-mail clicks before the cutoff; empty when interactions are not loaded."), True),
    Feature("n_contacts", "contacts", N_("Marketing contacts of any channel before the cutoff; empty when interactions are not loaded."), True),
    Feature("days_since_last_contact", "days", N_("Days from the latest marketing contact to the cutoff; empty without contacts."), True),
    Feature("age_years", "years", N_("Cutoff year minus the birth year from the customer profile; empty without one."), False),
    Feature("days_since_signup", "days", N_("Days from sign-up to the cutoff; empty without a sign-up date."), True),
)

FEATURE_NAMES: tuple[str, ...] = tuple(feature.name for feature in FEATURES)

# Columns of the feature views that are not model inputs.
KEY_COLUMNS = ("customer_id", "cutoff_date")


def features_at(con: duckdb.DuckDBPyConnection, cutoff: date | str):
    """Return the features of every customer as of ``cutoff`` as a polars DataFrame."""
    relation = con.sql("select * from mkt.customer_features_at($cutoff::date) order by customer_id", params={"cutoff": str(cutoff)})
    return relation.pl()
