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

    @app.command("load", help=_("Load records from FILE into the database DB."))
    def load_command(
        db: Annotated[Path, typer.Argument(help=_("DuckDB database file; created if it does not exist."))],
        file: Annotated[
            Path, typer.Argument(help=_("Input file: CSV or text (plain, .gz or .zst), Parquet or Excel .xlsx."))
        ],
        kind: Annotated[
            Optional[str],
            typer.Option(
                help=_(
                    "Record kind in the file: orders, events, interactions, customers or products. Default: orders, or "
                    "every kind of the preset whose columns the file has."
                )
            ),
        ] = None,
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
        hash_ids: Annotated[
            bool,
            typer.Option(
                "--hash-ids",
                help=_("Store every customer id as its HMAC-SHA256 hash; the key comes from DUCKMKT_ID_HASH_KEY or --id-key-file."),
            ),
        ] = False,
        id_key_file: Annotated[
            Optional[Path],
            typer.Option(help=_("File with the key (at least 32 bytes) for --hash-ids; keep it outside the database.")),
        ] = None,
        replace: Annotated[
            bool,
            typer.Option(
                "--replace",
                help=_("Replace an earlier load of the same file (same sha256): delete its rows and rejected rows and load the file again in the same transaction."),
            ),
        ] = False,
    ) -> None:
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
                hash_ids=hash_ids,
                id_key_file=id_key_file,
                replace=replace,
            )
        except DuckmktError as error:
            fail(error, State.debug)

    @app.command("quality", help=_("Show the data-quality counts of the loaded order lines."))
    def quality_command(
        db: Annotated[Path, typer.Argument(help=_("DuckDB database file."))],
    ) -> None:
        from duckmkt.pipeline import quality_command as run

        try:
            run(db)
        except DuckmktError as error:
            fail(error, State.debug)

    @app.command("train", help=_("Train the purchase, spend and churn model, export it to ONNX and save it."))
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
        n_train_cutoffs: Annotated[
            int, typer.Option(help=_("Number of training cutoffs whose rows are stacked, each the step before the next."))
        ] = 1,
        cutoff_step_days: Annotated[
            Optional[int], typer.Option(help=_("Days between stacked training cutoffs. Default: the horizon."))
        ] = None,
        time_budget: Annotated[
            Optional[float],
            typer.Option(help=_("Seconds for a hyperparameter search; without it the default network is trained once.")),
        ] = None,
        label: Annotated[
            Optional[str],
            typer.Option(help=_("View or select query with customer_id and a 0/1 label: trains a response model on it.")),
        ] = None,
        features: Annotated[
            Optional[str],
            typer.Option(help=_("View or select query with customer_id and numeric features, for --label. Default: mkt.customer_features.")),
        ] = None,
    ) -> None:
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
                n_train_cutoffs=n_train_cutoffs,
                cutoff_step_days=cutoff_step_days,
                time_budget_seconds=time_budget,
                label=label,
                features=features,
            )
        except DuckmktError as error:
            fail(error, State.debug)

    @app.command("score", help=_("Score every customer into mkt.customer_scores and show a summary."))
    def score_command(
        db: Annotated[Path, typer.Argument(help=_("DuckDB database file."))],
        model: Annotated[
            Optional[str], typer.Option(help=_("Model version or model folder. Default: the newest version of NAME."))
        ] = None,
        name: Annotated[str, typer.Option(help=_("Model name under MODELS_DIR."))] = "customer",
        models_dir: Annotated[Path, typer.Option(help=_("Folder of the model registry."))] = Path("models"),
        limit: Annotated[int, typer.Option(help=_("Number of scored customers to show."))] = 10,
        changed: Annotated[
            bool,
            typer.Option(
                "--changed", help=_("Score only customers whose features, model or strategy rules changed since the last run.")
            ),
        ] = False,
    ) -> None:
        from duckmkt.pipeline import score_command as run

        try:
            run(db, model=model, name=name, models_dir=models_dir, limit=limit, changed=changed)
        except DuckmktError as error:
            fail(error, State.debug)

    @app.command("demo", help=_("Run the whole pipeline on the embedded Online Retail excerpt: load, train, score."))
    def demo_command(
        db: Annotated[Path, typer.Option(help=_("Database file to build; replaced if it exists."))] = Path("out") / "demo.duckdb",
        models_dir: Annotated[Path, typer.Option(help=_("Folder of the model registry."))] = Path("models"),
        epochs: Annotated[Optional[int], typer.Option(help=_("Maximum number of training epochs."))] = None,
    ) -> None:
        from duckmkt.pipeline import demo_command as run

        try:
            run(db, models_dir=models_dir, epochs=epochs)
        except DuckmktError as error:
            fail(error, State.debug)

