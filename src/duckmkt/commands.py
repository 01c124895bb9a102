"""Typer commands of ``duckmkt``, built after the language is chosen."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Optional

import typer

from duckmkt import __version__
from duckmkt.cli import configure_logging, fail
from duckmkt.errors import DuckmktError
from duckmkt.i18n import _


class State:
    """Options shared by every command."""

    debug = False


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"duckmkt {__version__}")
        raise typer.Exit()


def _parse_date(value: Optional[str], option: str) -> Optional[date]:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as error:
        raise DuckmktError(
            _("{option} {value!r} is not a date; write it as YYYY-MM-DD.").format(option=option, value=value)
        ) from error


def build_app() -> typer.Typer:
    """Return the Typer application with help text in the active language."""
    app = typer.Typer(
        name="duckmkt",
        help=_("Personalized marketing with machine learning inside DuckDB."),
        no_args_is_help=True,
        add_completion=False,
        # Local variables may hold customer rows: never print them.
        pretty_exceptions_show_locals=False,
    )

    @app.callback()
    def common(
        lang: Annotated[
            Optional[str],
            typer.Option("--lang", help=_("Language of messages and help: en or zh. Default: from LC_ALL, LC_MESSAGES or LANG.")),
        ] = None,
        debug: Annotated[bool, typer.Option("--debug", help=_("Show progress details, SQL and tracebacks."))] = False,
        version: Annotated[
            bool,
            typer.Option("--version", callback=_print_version, is_eager=True, help=_("Show the duckmkt version and exit.")),
        ] = False,
    ) -> None:
        State.debug = debug
        configure_logging(debug)

    @app.command("load")
    def load_command(
        db: Annotated[Path, typer.Argument(help=_("DuckDB database file; created if it does not exist."))],
        file: Annotated[Path, typer.Argument(help=_("Order-line file: CSV (plain, .gz or .zst) or Parquet."))],
        preset: Annotated[
            Optional[str], typer.Option(help=_("Name of a shipped column mapping, for example online_retail."))
        ] = None,
        mapping: Annotated[
            Optional[Path], typer.Option(help=_("TOML file that maps the file's columns onto the order-line fields."))
        ] = None,
    ) -> None:
        """Load order lines from FILE into the database DB."""
        from duckmkt.pipeline import load_command as run

        try:
            run(db, file, preset=preset, mapping=mapping)
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
                train_cutoff=_parse_date(train_cutoff, "--train-cutoff"),
                validation_cutoff=_parse_date(validation_cutoff, "--validation-cutoff"),
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

    return app
