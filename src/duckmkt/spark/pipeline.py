"""Bodies of the ``duckmkt spark-*`` commands: export, features, scores and training on Spark."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import typer

from duckmkt.database import connect_database
from duckmkt.errors import DataError
from duckmkt.i18n import _
from duckmkt.spark.catalog import SparkCatalog, export_tables, table_file

logger = logging.getLogger(__name__)


def _echo(message: str) -> None:
    typer.echo(message)


def open_catalog(tables_dir: Path, master: str) -> SparkCatalog:
    """Start a local SparkSession and return the catalog of the tables in ``tables_dir``."""
    from duckmkt.spark.session import local_session

    if not Path(tables_dir).is_dir():
        raise DataError(
            _("Tables folder {path} not found; write it with 'duckmkt spark-export DB {path}'.").format(path=tables_dir)
        )
    return SparkCatalog(local_session(master), tables_dir)


def strategy_rules(catalog: SparkCatalog):
    """Return the rows of mkt.strategy_rules as Arrow, or None when the tables folder has none."""
    if not table_file(catalog.tables_dir, "mkt.strategy_rules").exists():
        return None
    return catalog.dataframe("mkt.strategy_rules").toArrow()


def export_command(db: Path, tables_dir: Path) -> list[str]:
    """Write the tables of ``db`` as Parquet into ``tables_dir`` and print what was written."""
    con = connect_database(db, read_only=True)
    try:
        names = export_tables(con, tables_dir)
    finally:
        con.close()
    _echo(_("Wrote {count} tables to {path}: {names}").format(count=len(names), path=tables_dir, names=", ".join(names)))
    return names


def features_command(tables_dir: Path, output: Path, *, cutoff: date | None = None, master: str = "local[2]") -> int:
    """Compute mkt.customer_features_at on Spark and write it as Parquet; return the number of customers."""
    catalog = open_catalog(tables_dir, master)
    cutoff = catalog.default_cutoff() if cutoff is None else cutoff
    frame = catalog.customer_features_at(cutoff)
    frame.write.mode("overwrite").parquet(str(output))
    count = catalog.session.read.parquet(str(output)).count()
    _echo(_("Wrote the features of {count} customers at cutoff {cutoff} to {path}.").format(count=count, cutoff=cutoff, path=output))
    return count


def score_command(
    tables_dir: Path,
    output: Path,
    *,
    model: str | None = None,
    name: str = "customer",
    models_dir: Path = Path("models"),
    cutoff: date | None = None,
    master: str = "local[2]",
) -> int:
    """Score every customer on Spark executors and write the scores as Parquet; return the number scored."""
    from duckmkt.scoring import resolve_model_dir
    from duckmkt.spark.scoring import score_features

    model_dir = resolve_model_dir(model, models_dir=models_dir, name=name)
    catalog = open_catalog(tables_dir, master)
    cutoff = catalog.default_cutoff() if cutoff is None else cutoff
    scores = score_features(catalog.customer_features_at(cutoff), model_dir, strategy_rules(catalog))
    scores.write.mode("overwrite").parquet(str(output))
    count = catalog.session.read.parquet(str(output)).count()
    _echo(_("Wrote the scores of {count} customers at cutoff {cutoff} to {path}.").format(count=count, cutoff=cutoff, path=output))
    return count


def train_command(
    tables_dir: Path,
    *,
    name: str = "customer",
    models_dir: Path = Path("models"),
    epochs: int | None = None,
    seed: int = 0,
    master: str = "local[2]",
):
    """Train the customer model on features and labels computed by Spark and print where it was saved."""
    from duckmkt.spark.training import train_from_spark

    catalog = open_catalog(tables_dir, master)
    options = {} if epochs is None else {"epochs": epochs}
    result = train_from_spark(catalog, models_dir=models_dir, name=name, seed=seed, **options)
    _echo(_("Saved model {name} version {version} in {path}.").format(name=name, version=result.version, path=result.model_dir))
    return result
