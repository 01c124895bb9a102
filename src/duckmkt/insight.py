"""The work behind ``duckmkt explain``, ``duckmkt monitor`` and ``duckmkt report``, callable without the CLI.

Each function opens the database, registers the model's UDFs, runs one step
and prints its result in the active language.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import typer

from duckmkt.database import connect_database
from duckmkt.errors import DataError, ModelError
from duckmkt.i18n import _
from duckmkt.tables import format_table

logger = logging.getLogger(__name__)

DEFAULT_MODELS_DIR = Path("models")

EXPLAIN_QUERY = """select explain_customer(f, $top_k) as explanation
from mkt.customer_features as f
where f.customer_id = $customer_id"""


def echo(text: str = "") -> None:
    typer.echo(text)


def _open(db: Path, model: str | None, name: str, models_dir: Path):
    from duckmkt.scoring import register

    from duckmkt.pipeline import note_recorded_model_folder

    con = connect_database(db, create=False)
    try:
        scorer = register(con, model, models_dir=models_dir, name=name)
    except Exception:
        con.close()
        raise
    note_recorded_model_folder(scorer, model, models_dir, name)
    return con, scorer


def explain_command(
    db: Path,
    *,
    model: str | None = None,
    name: str = "customer",
    models_dir: Path = DEFAULT_MODELS_DIR,
    customer: str | None = None,
    top: int = 10,
) -> dict[str, dict[str, float]]:
    """Print the model's global importance per head and, with ``customer``, that customer's explanation."""
    con, scorer = _open(db, model, name, models_dir)
    try:
        importance = scorer.metadata.get("global_importance")
        if not importance:
            raise ModelError(
                _("Model version {version} has no global importance in its metadata; retrain it with this duckmkt version.").format(
                    version=scorer.version
                )
            )
        if customer is not None:
            # Checked before anything is printed, so a mistyped id ends with
            # its error instead of after the whole importance table.
            customer = _known_customer(con, customer)
        print_importance(importance, top, scorer.metadata.get("output_names", []))
        if customer is not None:
            print_customer_explanation(con, customer, min(top, len(scorer.feature_names)))
    finally:
        con.close()
    return importance["values"]


def print_importance(importance: dict, top: int, head_order: list[str]) -> None:
    echo(
        _("Global importance: mean absolute Shapley attribution on {rows} training rows, in the unit of each head.").format(
            rows=importance["n_rows"]
        )
    )
    heads = sorted(importance["values"], key=lambda head: head_order.index(head) if head in head_order else len(head_order))
    for head in heads:
        values = importance["values"][head]
        total = sum(values.values()) or 1.0
        rows = [(feature, value, f"{value / total:.1%}") for feature, value in list(values.items())[:top]]
        echo()
        echo(head)
        echo(format_table([_("feature"), _("mean |contribution|"), _("share")], rows))


def _known_customer(con, customer: str) -> str:
    """Return ``customer`` as mkt.customer_features stores it, or raise naming it.

    The id is trimmed and a spreadsheet float such as '17850.0' becomes
    '17850', as the loader does with the ids it loads.
    """
    normalized = re.sub(r"^([0-9]+)\.0+$", r"\1", str(customer).strip())
    found = con.execute("select count(*) from mkt.customer_features where customer_id = ?", [normalized]).fetchall()[0][0]
    if not found:
        raise DataError(
            _("Customer {customer} is not in mkt.customer_features; list the ids with: select customer_id from mkt.customer_features.").format(
                customer=customer
            )
        )
    return normalized


def _plain_number(value: float, *, sign: bool = False) -> str:
    """Return ``value`` without scientific notation: 4 significant digits below 10, else grouped with 2 decimals."""
    plus = "+" if sign else ""
    if abs(value) < 10:
        return f"{value:{plus}.4g}"
    return f"{value:{plus},.2f}"


def print_customer_explanation(con, customer: str, top_k: int) -> None:
    rows = con.execute(EXPLAIN_QUERY, {"customer_id": str(customer), "top_k": top_k}).fetchall()
    if not rows:
        raise DataError(
            _("Customer {customer} is not in mkt.customer_features; list the ids with: select customer_id from mkt.customer_features.").format(
                customer=customer
            )
        )
    explanation = rows[0][0]
    for head, detail in explanation.items():
        if head == "model_version":
            continue
        echo()
        echo(
            _("{head}: prediction {prediction}, baseline {baseline}, other features {other}").format(
                head=head,
                prediction=_plain_number(detail["prediction"]),
                baseline=_plain_number(detail["baseline"]),
                other=_plain_number(detail["other_contribution"], sign=True),
            )
        )
        table = [(item["feature"], item["value"], item["contribution"], item["reason"]) for item in detail["top_features"]]
        echo(format_table([_("feature"), _("value"), _("contribution"), _("reason")], table))


def monitor_command(
    db: Path, *, model: str | None = None, name: str = "customer", models_dir: Path = DEFAULT_MODELS_DIR
):
    """Compare today's features and scores with those when the model was trained, write ``mkt.drift_report`` and print it."""
    from duckmkt import monitor

    con, scorer = _open(db, model, name, models_dir)
    try:
        report = monitor.drift_report(con, scorer)
        monitor.write_drift_report(con, report)
    finally:
        con.close()

    echo(
        _("Drift of model version {version}: reference cutoff {reference}, today's cutoff {current}, {rows:,} customers today.").format(
            version=report.model_version, reference=report.reference_cutoff, current=report.current_cutoff, rows=report.n_current_rows
        )
    )
    table = [
        (row.kind, row.name, row.psi, row.status, row.missing_rate_change, row.out_of_range_share, ", ".join(row.flags))
        for row in report.rows
    ]
    echo(format_table([_("kind"), _("name"), "PSI", _("status"), _("missing rate change"), _("share out of range"), _("flags")], table))
    echo()
    echo(_("{count} of {total} rows flagged; written to {table}.").format(count=len(report.flagged()), total=len(report.rows), table=monitor.DRIFT_TABLE))
    echo(report.localized_recommendation())
    return report


def report_command(
    db: Path,
    output: Path,
    *,
    model: str | None = None,
    name: str = "customer",
    models_dir: Path = DEFAULT_MODELS_DIR,
) -> Path:
    """Write the HTML report of the model on the data in ``db`` to ``output``."""
    from duckmkt.report import write_report

    con, scorer = _open(db, model, name, models_dir)
    try:
        path = write_report(con, scorer, output)
    finally:
        con.close()
    echo(_("Report written to {path}.").format(path=path))
    return path
