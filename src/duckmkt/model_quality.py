"""What the ``duckmkt models``, ``evaluate`` and ``features`` commands do, callable without the CLI.

Each function opens the database, runs one step, prints its result in the
active language and raises ``DuckmktError`` on failure.
"""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path

import typer

from duckmkt import registry
from duckmkt.database import connect_database
from duckmkt.i18n import N_, _
from duckmkt.tables import format_table

logger = logging.getLogger(__name__)

# model_kind of the product recommender in mkt.models.
RECOMMENDER_KIND = "recommender"


def echo(text: str = "") -> None:
    typer.echo(text)


def models_list_command(db: Path, *, name: str | None = None) -> list[tuple]:
    """Print the model versions recorded in ``mkt.models``, newest first.

    Recommender versions are labelled in the active language and followed by
    a line that names the rule ``recommend_products`` uses to pick a version.
    """
    con = connect_database(db, create=False)
    try:
        rows = registry.list_models(con, name)
    finally:
        con.close()
    table = [
        (
            model,
            version,
            str(created_at),
            _kind_label(kind),
            status,
            ", ".join(str(c) for c in cutoffs or []),
            "" if validation_cutoff is None else str(validation_cutoff),
        )
        for model, version, created_at, kind, status, cutoffs, validation_cutoff in rows
    ]
    echo(
        format_table(
            [_("name"), _("version"), _("created at"), _("kind"), _("status"), _("training cutoffs"), _("validation cutoff")],
            table,
        )
    )
    if any(row[3] == RECOMMENDER_KIND for row in rows):
        echo(
            _(
                "recommend_products uses the promoted product recommender version, or the newest one under "
                "MODELS_DIR/NAME when none is promoted; change it with 'duckmkt models promote DB VERSION --name NAME'."
            )
        )
    return rows


# The units of the feature catalog, marked for translation; the formulas stay
# as they are because they are SQL.
UNIT_LABELS = {
    "contacts": N_("contacts"),
    "currency": N_("currency"),
    "currency per item": N_("currency per item"),
    "days": N_("days"),
    "events": N_("events"),
    "items": N_("items"),
    "orders": N_("orders"),
    "orders per 30 days": N_("orders per 30 days"),
    "products": N_("products"),
    "sessions": N_("sessions"),
    "share": N_("share"),
    "years": N_("years"),
}

KIND_LABELS = {
    "customer": N_("customer model"),
    "response": N_("response model"),
    RECOMMENDER_KIND: N_("product recommender"),
}


def _kind_label(kind: str) -> str:
    """Return the kind column of ``models list``: the kind's label in the active language, or its code when unknown."""
    return _(KIND_LABELS[kind]) if kind in KIND_LABELS else kind


def models_show_command(db: Path, version: str, *, name: str = "customer") -> dict:
    """Print one recorded version: its row in ``mkt.models`` and its metrics."""
    con = connect_database(db, create=False)
    try:
        row = registry.model_row(con, name, version)
    finally:
        con.close()
    metrics = json.loads(row.pop("metrics") or "{}")
    echo(format_table([_("field"), _("value")], [(key, _field_text(value)) for key, value in row.items()]))
    echo()
    echo(format_table([_("metric"), _("value")], [(key, _metric_value(value)) for key, value in sorted(metrics.items())]))
    return {**row, "metrics": metrics}


def _field_text(value: object) -> str:
    """Return a ``mkt.models`` value as text: a list as comma-separated items, a missing value as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(_field_text(item) for item in value)
    return str(value)


def _metric_value(value: object) -> object:
    """Return a metric as ``format_table`` shows it: numbers and missing values unchanged, anything else as text."""
    if value is None or isinstance(value, (int, float)):
        return value
    return _field_text(value)


def models_promote_command(db: Path, version: str, *, name: str = "customer", models_dir: Path = Path("models")) -> dict:
    """Promote ``version`` of ``name``; score_customer then uses it."""
    con = connect_database(db, create=False)
    try:
        row = registry.promote(con, name, version, models_dir=models_dir)
    finally:
        con.close()
    if row.get("model_kind") == RECOMMENDER_KIND:
        echo(
            _("Promoted product recommender {name} version {version}; recommend_products uses it on connections opened from now on.").format(
                name=name, version=row["version"]
            )
        )
    else:
        echo(_("Promoted model {name} version {version}; score_customer now uses it.").format(name=name, version=row["version"]))
    _compile_promoted(db, row)
    return row


def models_rollback_command(db: Path, *, name: str = "customer") -> dict:
    """Demote the promoted version of ``name`` and promote the one promoted before it."""
    con = connect_database(db, create=False)
    try:
        row = registry.rollback(con, name)
    finally:
        con.close()
    echo(_("Rolled model {name} back to version {version}.").format(name=name, version=row["version"]))
    _compile_promoted(db, row)
    return row


def _compile_promoted(db: Path, row: dict) -> None:
    """Compile a newly promoted customer model into SQL, so clients without Python score with it too."""
    if row.get("model_kind") != "customer":
        return
    from duckmkt.clients import compile_after_training

    compile_after_training(db, Path(row["model_dir"]))


def evaluate_command(
    db: Path,
    *,
    cutoff: date,
    model: str | None = None,
    name: str = "customer",
    models_dir: Path = Path("models"),
    horizon_days: int | None = None,
    churn_horizon_days: int | None = None,
):
    """Evaluate the promoted (or named) model and the baselines out of time at ``cutoff``; print the table."""
    from duckmkt.evaluation.evaluate import evaluate
    from duckmkt.scoring import resolve_model_dir

    con = connect_database(db, create=False)
    try:
        model_dir = resolve_model_dir(model, models_dir=models_dir, name=name, con=con)
        result = evaluate(con, model_dir, cutoff=cutoff, horizon_days=horizon_days, churn_horizon_days=churn_horizon_days)
    finally:
        con.close()

    echo(
        _("Model {name} version {version} at cutoff {cutoff}: {rows:,} customers, labels over {days} days.").format(
            name=name, version=result.model_version, cutoff=result.cutoff, rows=result.n_rows, days=result.horizon_days
        )
    )
    if result.horizon_scale != 1.0:
        echo(
            _("The model was trained on another horizon; its spend and purchase counts are scaled by {scale:.3f}.").format(
                scale=result.horizon_scale
            )
        )
    rows = [
        (head, metric, method, value, "*" if result.best_method(head, metric) == method else "")
        for head, metric, method, value in result.table()
    ]
    echo(format_table([_("head"), _("metric"), _("method"), _("value"), _("best")], rows))
    echo(
        _(
            "Methods: duckmkt (this model), rfm_rules (RFM score; previous-window spend and purchase days), "
            "rfm_logistic (logistic regression on RFM), bgnbd (BG/NBD with Gamma-Gamma)."
        )
    )
    return result


def features_command(db: Path) -> list[tuple]:
    """Write ``mkt.feature_catalog`` into ``db`` and print it in the active language."""
    from duckmkt import features
    from duckmkt.feature_catalog import write_feature_catalog

    con = connect_database(db, create=False)
    try:
        write_feature_catalog(con)
        rows = con.execute("select name, unit, source_table, formula from mkt.feature_catalog order by position").fetchall()
    finally:
        con.close()
    by_name = {feature.name: feature for feature in features.FEATURES}
    table = [(name, _(UNIT_LABELS.get(unit, unit)), source, formula, by_name[name].localized_description()) for name, unit, source, formula in rows]
    echo(format_table([_("feature"), _("unit"), _("source table"), _("formula"), _("description")], table))
    return rows


def train_response_command(
    db: Path,
    *,
    label: str,
    features: str | None = None,
    name: str = "customer",
    models_dir: Path = Path("models"),
    seed: int = 0,
    **trainer_params,
):
    """Train a response model on ``label``, save it, record it in ``mkt.models`` and print its held-out metrics."""
    from duckmkt.training.response import DEFAULT_FEATURES, train_response

    con = connect_database(db, create=False)
    try:
        result = train_response(
            con,
            label=label,
            features=features or DEFAULT_FEATURES,
            models_dir=models_dir,
            name=name,
            seed=seed,
            **trainer_params,
        )
        registry.record_model(con, result.model_dir)
    finally:
        con.close()
    echo(
        _("{train:,} training rows, {validation:,} held-out rows (one stratified fold of 5).").format(
            train=result.n_train_rows, validation=result.n_validation_rows
        )
    )
    echo(format_table([_("metric"), _("value")], sorted(result.metrics.items())))
    echo(_("Model saved to {path} in {seconds:.0f} s.").format(path=result.model_dir, seconds=result.seconds))
    return result
