"""The Spark commands: export the tables, then compute features, scores or a model on Spark."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from duckmkt.cli import fail
from duckmkt.commands.common import State, parse_date
from duckmkt.errors import DuckmktError
from duckmkt.i18n import _


def register(app: typer.Typer) -> None:
    """Add the spark-* commands to ``app``."""

    @app.command("spark-export", help=_("Write the tables of database DB as Parquet files into FOLDER for the Spark backend."))
    def export_command(
        db: Annotated[Path, typer.Argument(help=_("DuckDB database file."))],
        folder: Annotated[Path, typer.Argument(help=_("Folder to write <schema>.<table>.parquet files into."))],
    ) -> None:
        from duckmkt.spark.pipeline import export_command as run

        try:
            run(db, folder)
        except DuckmktError as error:
            fail(error, State.debug)

    @app.command("spark-features", help=_("Compute the customer features on Spark and write them as Parquet."))
    def features_command(
        tables: Annotated[Path, typer.Argument(help=_("Folder of Parquet tables written by 'duckmkt spark-export'."))],
        output: Annotated[Path, typer.Argument(help=_("Parquet folder to write; replaced if it exists."))],
        cutoff: Annotated[Optional[str], typer.Option(help=_("Cutoff date (YYYY-MM-DD). Default: the day after the latest sale."))] = None,
        master: Annotated[str, typer.Option(help=_("Spark master URL, for example local[2] or spark://host:7077."))] = "local[2]",
    ) -> None:
        from duckmkt.spark.pipeline import features_command as run

        try:
            run(tables, output, cutoff=parse_date(cutoff, "--cutoff"), master=master)
        except DuckmktError as error:
            fail(error, State.debug)

    @app.command("spark-score", help=_("Score every customer on Spark with the ONNX model and write the scores as Parquet."))
    def score_command(
        tables: Annotated[Path, typer.Argument(help=_("Folder of Parquet tables written by 'duckmkt spark-export'."))],
        output: Annotated[Path, typer.Argument(help=_("Parquet folder to write; replaced if it exists."))],
        model: Annotated[
            Optional[str], typer.Option(help=_("Model version or model folder. Default: the newest version of NAME."))
        ] = None,
        name: Annotated[str, typer.Option(help=_("Model name under MODELS_DIR."))] = "customer",
        models_dir: Annotated[Path, typer.Option(help=_("Folder of the model registry."))] = Path("models"),
        cutoff: Annotated[Optional[str], typer.Option(help=_("Cutoff date (YYYY-MM-DD). Default: the day after the latest sale."))] = None,
        master: Annotated[str, typer.Option(help=_("Spark master URL, for example local[2] or spark://host:7077."))] = "local[2]",
    ) -> None:
        from duckmkt.spark.pipeline import score_command as run

        try:
            run(
                tables,
                output,
                model=model,
                name=name,
                models_dir=models_dir,
                cutoff=parse_date(cutoff, "--cutoff"),
                master=master,
            )
        except DuckmktError as error:
            fail(error, State.debug)

    @app.command("spark-train", help=_("Train the customer model on features and labels computed by Spark."))
    def train_command(
        tables: Annotated[Path, typer.Argument(help=_("Folder of Parquet tables written by 'duckmkt spark-export'."))],
        name: Annotated[str, typer.Option(help=_("Model name; versions are saved under MODELS_DIR/NAME/."))] = "customer",
        models_dir: Annotated[Path, typer.Option(help=_("Folder of the model registry."))] = Path("models"),
        epochs: Annotated[Optional[int], typer.Option(help=_("Maximum number of training epochs."))] = None,
        seed: Annotated[int, typer.Option(help=_("Random seed; the same data and seed give the same model."))] = 0,
        master: Annotated[str, typer.Option(help=_("Spark master URL, for example local[2] or spark://host:7077."))] = "local[2]",
    ) -> None:
        from duckmkt.spark.pipeline import train_command as run

        try:
            run(tables, name=name, models_dir=models_dir, epochs=epochs, seed=seed, master=master)
        except DuckmktError as error:
            fail(error, State.debug)
