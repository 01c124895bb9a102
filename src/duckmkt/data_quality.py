"""The report of ``duckmkt quality``: what each load kept, dropped and rejected, and why.

Three kinds of count answer different questions, so the report keeps them
apart. Line statuses are exclusive and add up to the order lines read.
Checks may overlap (a duplicate line can also have a zero price). Rejected
rows never reached the raw tables, because a value could not be read.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from duckmkt.i18n import N_, _
from duckmkt.tables import format_table

# The flag rows of mkt.data_quality, in the view's order, with what each counts.
CHECKS = {
    "exact_duplicates": N_("lines that repeat an earlier line of the same file"),
    "invalid_values": N_("lines with a missing or unreadable order, product, date, quantity or price"),
    "missing_customer_id": N_("lines without a customer id"),
    "cancellations": N_("lines of orders whose id starts with C"),
    "negative_quantity": N_("lines with a negative quantity"),
    "zero_unit_price": N_("lines with a unit price of 0"),
    "non_product_lines": N_("postage, fee, discount or adjustment lines"),
    "adjustment_orders": N_("orders whose id starts with A (bad-debt adjustments)"),
}

# Other sources: the raw table and the staging view that cleans it.
SOURCES = (
    ("customers", "raw.customers", "mkt.stg_customers", N_("the latest profile of each customer is kept")),
    ("products", "raw.products", "mkt.stg_products", N_("the latest row of each product is kept")),
    ("events", "raw.events", "mkt.stg_events", N_("every event is kept")),
    ("interactions", "raw.interactions", "mkt.stg_interactions", N_("every contact is kept")),
)


@dataclass(frozen=True)
class QualityReport:
    """The counts ``duckmkt quality`` prints, read from one database."""

    checks: list[tuple[str, int]]
    statuses: dict[str, int]
    rejected: list[tuple[str, str, int]]
    sources: list[tuple[str, int, int, str]]

    @property
    def rows_read(self) -> int:
        return dict(self.checks)["rows_read"]

    @property
    def customers(self) -> int:
        return dict(self.checks)["distinct_customers"]

    @property
    def customers_with_sale(self) -> int:
        """Customers with at least one sale line: only they get features and scores."""
        return dict(self.checks)["customers_with_sale"]


def read_quality(con: duckdb.DuckDBPyConnection) -> QualityReport:
    """Read ``mkt.data_quality``, the rejected rows and the row counts of the other sources."""
    rows = con.execute("select check_name, n_rows from mkt.data_quality").fetchall()
    checks = [(name, n_rows) for name, n_rows in rows if not name.startswith("status:")]
    statuses = {name.removeprefix("status:"): n_rows for name, n_rows in rows if name.startswith("status:")}
    rejected = con.execute(
        "select kind, reason, count(*) from mkt.rejected_rows group by kind, reason order by kind, count(*) desc, reason"
    ).fetchall()
    sources = []
    for kind, raw_table, staging_view, note in SOURCES:
        n_loaded = con.execute(f"select count(*) from {raw_table}").fetchall()[0][0]
        if n_loaded:
            n_kept = con.execute(f"select count(*) from {staging_view}").fetchall()[0][0]
            sources.append((kind, n_loaded, n_kept, note))
    return QualityReport(checks=checks, statuses=statuses, rejected=rejected, sources=sources)


def format_quality(report: QualityReport, status_description) -> str:
    """Return the report as text; ``status_description`` gives the English meaning of a line status."""
    parts = [
        _("Order lines read: {rows} ({customers} customers, {with_sale} of them with a sale line; only those get features and scores).").format(
            rows=f"{report.rows_read:,}", customers=f"{report.customers:,}", with_sale=f"{report.customers_with_sale:,}"
        ),
        "",
        _("Each line has one status; the statuses add up to the lines read:"),
        format_table(
            [_("line status"), _("meaning"), _("rows")],
            [(status, _(status_description(status)), count) for status, count in sorted(report.statuses.items())],
        ),
        "",
        _("Checks on the order lines; a line can fail several, and duplicate lines are counted too:"),
        format_table(
            [_("check"), _("meaning"), _("rows")],
            [(name, _(CHECKS[name]), count) for name, count in report.checks if name in CHECKS],
        ),
        "",
    ]
    if report.rejected:
        parts += [
            _("Rows rejected while loading, kept with the reason in mkt.rejected_rows:"),
            format_table([_("kind"), _("reason"), _("rows")], report.rejected),
        ]
    else:
        parts.append(_("No row was rejected while loading."))
    if report.sources:
        parts += [
            "",
            _("Other sources:"),
            format_table(
                [_("kind"), _("rows loaded"), _("rows after cleaning"), _("rule")],
                [(kind, n_loaded, n_kept, _(note)) for kind, n_loaded, n_kept, note in report.sources],
            ),
        ]
    return "\n".join(parts)
