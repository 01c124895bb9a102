"""What each ``duckmkt`` command does, callable without the CLI.

Each function runs one step, prints its results in the active language and
raises ``DuckmktError`` on failure; ``duckmkt.commands`` only parses options.
"""

from __future__ import annotations

import logging
import shutil
import time
from datetime import date
from importlib import resources
from pathlib import Path

import typer

from duckmkt import loading
from duckmkt.database import connect_database
from duckmkt.errors import DuckmktError
from duckmkt.i18n import N_, _
from duckmkt.tables import format_table

logger = logging.getLogger(__name__)

EMBEDDED_DATA = "online_retail_excerpt.parquet"


SCORE_QUERY = """select customer_id, score_customer(f) as score
from mkt.customer_features f
order by score.expected_spend desc
limit {limit}"""


def echo(text: str = "") -> None:
    typer.echo(text)


def load_command(db: Path, file: Path, *, preset: str | None = None, mapping: Path | None = None) -> loading.LoadReport:
    """Load ``file`` into ``db`` and print the load report."""
    chosen = None
    if preset is not None or mapping is not None:
        chosen = loading.read_mapping(mapping, preset=preset)

    con = connect_database(db)
    try:
        report = loading.load_orders(con, file, chosen)
    finally:
        con.close()
    print_load_report(report)
    return report


def print_load_report(report: loading.LoadReport) -> None:
    if report.skipped_as_repeat:
        echo(
            _("{file} was loaded before (same sha256); nothing was added.").format(file=Path(report.source_file).name)
        )
        return
    echo(
        _("Loaded {file} with mapping {mapping}: {rows:,} rows read, {loaded:,} rows stored.").format(
            file=Path(report.source_file).name, mapping=report.mapping, rows=report.n_rows_read, loaded=report.n_rows_loaded
        )
    )
    rows = [(status, _(status_description(status)), count) for status, count in sorted(report.line_status_counts.items())]
    echo(format_table([_("line status"), _("meaning"), _("rows")], rows))


def status_description(status: str) -> str:
    """Return the English description of a line status (translated by the caller)."""
    return {
        "sale": N_("product sale, used for features"),
        "duplicate": N_("exact duplicate of an earlier line, dropped"),
        "invalid": N_("a value could not be typed, dropped"),
        "missing_customer": N_("no customer id, dropped"),
        "cancellation": N_("cancelled order line, used for the return rate"),
        "return": N_("returned items, used for the return rate"),
        "non_product": N_("postage, fee, discount or adjustment, dropped"),
        "zero_price": N_("zero or negative unit price, dropped"),
    }.get(status, status)


def quality_command(db: Path) -> list[tuple[str, int]]:
    """Print ``mkt.data_quality`` for ``db``."""
    con = connect_database(db)
    try:
        rows = con.execute("select check_name, n_rows from mkt.data_quality").fetchall()
    finally:
        con.close()
    echo(format_table([_("check"), _("rows")], rows))
    return rows


def train_command(
    db: Path,
    *,
    name: str = "customer",
    models_dir: Path = Path("models"),
    horizon_days: int | None = None,
    churn_horizon_days: int | None = None,
    train_cutoff: date | None = None,
    validation_cutoff: date | None = None,
    epochs: int | None = None,
    seed: int = 0,
):
    """Train, export and save a model from the data in ``db``; print its metrics."""
    try:
        from duckmkt import training
    except ImportError as error:
        raise DuckmktError(
            _("Training needs TensorFlow and tf2onnx, which are not installed ({error}); install them with: pip install 'duckmkt[train]'").format(
                error=error
            )
        ) from error

    con = connect_database(db)
    started = time.perf_counter()
    try:
        result = training.train(
            con,
            models_dir=models_dir,
            name=name,
            horizon_days=horizon_days,
            churn_horizon_days=churn_horizon_days,
            train_cutoff=train_cutoff,
            validation_cutoff=validation_cutoff,
            epochs=epochs,
            seed=seed,
            progress=print_progress,
        )
    finally:
        con.close()
    print_training_result(result, time.perf_counter() - started)
    return result


def print_progress(message: str) -> None:
    echo(message)


def print_training_result(result, seconds: float) -> None:
    """Print the settings, the metrics beside their baselines and the model folder."""
    echo()
    echo(_("Validation metrics on the out-of-time rows (model beside baselines):"))
    echo(format_table([_("metric"), _("model"), _("baseline"), _("baseline model")], result.metric_rows()))
    echo()
    echo(_("Model saved to {path} in {seconds:.0f} s.").format(path=result.model_dir, seconds=seconds))


def score_command(
    db: Path,
    *,
    model: str | None = None,
    name: str = "customer",
    models_dir: Path = Path("models"),
    limit: int = 10,
) -> int:
    """Score every customer of ``db`` into ``mkt.customer_scores`` and print a summary."""
    from duckmkt.scores import strategy_summary, write_customer_scores
    from duckmkt.scoring import register

    con = connect_database(db)
    try:
        scorer = register(con, model, models_dir=models_dir, name=name)
        echo(_("Scoring with model {name} version {version}.").format(name=scorer.metadata.get("name"), version=scorer.version))
        n_customers = write_customer_scores(con)
        print_score_sample(con, limit)
        print_strategy_summary(strategy_summary(con))
    finally:
        con.close()
    echo(_("{count:,} customers scored into mkt.customer_scores.").format(count=n_customers))
    return n_customers


def print_score_sample(con, limit: int) -> None:
    """Run the documented scoring query and print its first rows."""
    query = SCORE_QUERY.format(limit=int(limit))
    echo(_("SQL:"))
    echo(query)
    rows = con.execute(query).fetchall()
    table = [
        (customer_id, score["purchase_prob"], score["expected_spend"], score["churn_risk"], score["strategy"])
        for customer_id, score in rows
    ]
    echo(format_table(["customer_id", "purchase_prob", "expected_spend", "churn_risk", "strategy"], table))
    echo()


def print_strategy_summary(rows: list[tuple]) -> None:
    from duckmkt.strategy import STRATEGIES

    table = [
        (code, STRATEGIES[code].localized_label() if code in STRATEGIES else code, n, prob, spend, churn)
        for code, n, prob, spend, churn in rows
    ]
    echo(_("Customers per strategy:"))
    echo(
        format_table(
            [_("strategy"), _("label"), _("customers"), _("mean purchase_prob"), _("total expected_spend"), _("mean churn_risk")],
            table,
        )
    )
    echo()


def demo_command(db: Path, *, models_dir: Path = Path("models"), epochs: int | None = None) -> None:
    """Build ``db`` from the embedded Online Retail excerpt, train, and score."""
    db = Path(db)
    if db.exists():
        db.unlink()
        echo(_("Replacing {db}.").format(db=db))
    db.parent.mkdir(parents=True, exist_ok=True)
    data = Path(str(resources.files("duckmkt") / "data" / EMBEDDED_DATA))

    echo(_("Step 1/4: load the embedded Online Retail excerpt (CC BY 4.0, UCI id 352) into {db}").format(db=db))
    load_command(db, data, preset="online_retail")
    echo()
    echo(_("Step 2/4: data-quality counts"))
    quality_command(db)
    echo()
    echo(_("Step 3/4: train the model (models folder: {models_dir})").format(models_dir=models_dir))
    result = train_command(db, models_dir=models_dir, epochs=epochs)
    echo()
    echo(_("Step 4/4: score every customer in SQL"))
    score_command(db, model=str(result.model_dir), models_dir=models_dir)
