"""The core commands: load, quality, train, score and demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from duckmkt.cli import fail
from duckmkt.commands.common import State, parse_date
from duckmkt.errors import DuckmktError
from duckmkt.i18n import _


def register(app: typer.Typer) -> None:
    """Add the core commands to ``app``."""

    @app.command("load")
    def load_command(
        db: Annotated[Path, typer.Argument(help=_("DuckDB database file; created if it does not exist."))],
        file: Annotated[
            Path, typer.Argument(help=_("Input file: CSV or text (plain, .gz or .zst), Parquet or Excel .xlsx."))
        ],
        kind: Annotated[
            str, typer.Option(help=_("Record kind in the file: orders, events, interactions, customers or products."))
        ] = "orders",
        preset: Annotated[
            Optional[str],
            typer.Option(help=_("Name of a shipped mapping: online_retail, cdnow or bank_marketing.")),
        ] = None,
        mapping: Annotated[
            Optional[Path], typer.Option(help=_("TOML file that maps the file's columns onto the record fields."))
        ] = None,
        encoding: Annotated[
            Optional[str], typer.Option(help=_("Text encoding, for example utf-8, gb18030 or latin-1. Default: detected."))
        ] = None,
        date_format: Annotated[
            Optional[str],
            typer.Option(help=_("strptime format of the dates, or day-first / month-first. Default: detected.")),
        ] = None,
        timezone: Annotated[
            Optional[str],
            typer.Option(help=_("IANA time zone of dates written without one, for example Europe/London; they are stored in UTC.")),
        ] = None,
        delimiter: Annotated[
            Optional[str], typer.Option(help=_("Field delimiter of a CSV file. Default: detected."))
        ] = None,
    ) -> None:
        """Load records from FILE into the database DB."""
        from duckmkt.pipeline import load_command as run

        try:
            run(
                db,
                file,
                kind=kind,
                preset=preset,
                mapping=mapping,
                encoding=encoding,
                date_format=date_format,
                timezone=timezone,
                delimiter=delimiter,
            )
        except DuckmktError as error:
            fail(error, State.debug)

    @app.command("quality")
    def quality_command(
        db: Annotated[Path, typer.Argument(help=_("DuckDB database file."))],
    ) -> None:
        """Show the data-quality counts of the loaded order lines."""
        from duckmkt.pipeline import quality_command as run

        try:
            run(db)
        except DuckmktError as error:
            fail(error, State.debug)

    @app.command("train")
    def train_command(
        db: Annotated[Path, typer.Argument(help=_("DuckDB database file with loaded order lines."))],
        name: Annotated[str, typer.Option(help=_("Model name; versions are saved under MODELS_DIR/NAME/."))] = "customer",
        models_dir: Annotated[Path, typer.Option(help=_("Folder of the model registry."))] = Path("models"),
        horizon_days: Annotated[
            Optional[int], typer.Option(help=_("Days after the cutoff in which a purchase and its spend count. Default: 60."))
        ] = None,
        churn_horizon_days: Annotated[
            Optional[int],
            typer.Option(help=_("Days without a purchase after the cutoff that count as churn. Default: 120.")),
        ] = None,
        train_cutoff: Annotated[
            Optional[str],
            typer.Option(help=_("Cutoff date (YYYY-MM-DD) of the training rows. Default: validation cutoff minus the churn horizon.")),
        ] = None,
        validation_cutoff: Annotated[
            Optional[str],
            typer.Option(help=_("Cutoff date (YYYY-MM-DD) of the out-of-time validation rows. Default: the latest date that leaves a full churn horizon.")),
        ] = None,
        epochs: Annotated[Optional[int], typer.Option(help=_("Maximum number of training epochs."))] = None,
        seed: Annotated[int, typer.Option(help=_("Random seed; the same data and seed give the same model."))] = 0,
    ) -> None:
        """Train the purchase, spend and churn model, export it to ONNX and save it."""
        from duckmkt.pipeline import train_command as run

        try:
            run(
                db,
                name=name,
                models_dir=models_dir,
                horizon_days=horizon_days,
                churn_horizon_days=churn_horizon_days,
                train_cutoff=parse_date(train_cutoff, "--train-cutoff"),
                validation_cutoff=parse_date(validation_cutoff, "--validation-cutoff"),
                epochs=epochs,
                seed=seed,
            )
        except DuckmktError as error:
            fail(error, State.debug)

    @app.command("score")
    def score_command(
        db: Annotated[Path, typer.Argument(help=_("DuckDB database file."))],
        model: Annotated[
            Optional[str], typer.Option(help=_("Model version or model folder. Default: the newest version of NAME."))
        ] = None,
        name: Annotated[str, typer.Option(help=_("Model name under MODELS_DIR."))] = "customer",
        models_dir: Annotated[Path, typer.Option(help=_("Folder of the model registry."))] = Path("models"),
        limit: Annotated[int, typer.Option(help=_("Number of scored customers to show."))] = 10,
    ) -> None:
        """Score every customer into mkt.customer_scores and show a summary."""
        from duckmkt.pipeline import score_command as run

        try:
            run(db, model=model, name=name, models_dir=models_dir, limit=limit)
        except DuckmktError as error:
            fail(error, State.debug)

    @app.command("demo")
    def demo_command(
        db: Annotated[Path, typer.Option(help=_("Database file to build; replaced if it exists."))] = Path("out") / "demo.duckdb",
        models_dir: Annotated[Path, typer.Option(help=_("Folder of the model registry."))] = Path("models"),
        epochs: Annotated[Optional[int], typer.Option(help=_("Maximum number of training epochs."))] = None,
    ) -> None:
        """Run the whole pipeline on the embedded Online Retail excerpt: load, train, score."""
        from duckmkt.pipeline import demo_command as run

        try:
            run(db, models_dir=models_dir, epochs=epochs)
        except DuckmktError as error:
            fail(error, State.debug)

