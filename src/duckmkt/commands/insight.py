"""The insight commands: explain, monitor and report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from duckmkt.cli import fail
from duckmkt.commands.common import State
from duckmkt.errors import DuckmktError
from duckmkt.i18n import _


def register(app: typer.Typer) -> None:
    """Add the explain, monitor and report commands to ``app``."""

    @app.command("explain", help=_("Show the model's global feature importance per head, and optionally explain one customer."))
    def explain_command(
        db: Annotated[Path, typer.Argument(help=_("DuckDB database file."))],
        customer: Annotated[
            Optional[str], typer.Option(help=_("Customer id whose scores to explain with explain_customer."))
        ] = None,
        top: Annotated[int, typer.Option(min=1, help=_("Number of features to show per head."))] = 10,
        model: Annotated[
            Optional[str], typer.Option(help=_("Model version or model folder. Default: the newest version of NAME."))
        ] = None,
        name: Annotated[str, typer.Option(help=_("Model name under MODELS_DIR."))] = "customer",
        models_dir: Annotated[Path, typer.Option(help=_("Folder of the model registry."))] = Path("models"),
    ) -> None:
        from duckmkt.insight import explain_command as run

        try:
            run(db, model=model, name=name, models_dir=models_dir, customer=customer, top=top)
        except DuckmktError as error:
            fail(error, State.debug)

    @app.command("monitor", help=_("Compare today's features and scores with those when the model was trained, write mkt.drift_report and recommend whether to retrain."))
    def monitor_command(
        db: Annotated[Path, typer.Argument(help=_("DuckDB database file."))],
        model: Annotated[
            Optional[str], typer.Option(help=_("Model version or model folder. Default: the newest version of NAME."))
        ] = None,
        name: Annotated[str, typer.Option(help=_("Model name under MODELS_DIR."))] = "customer",
        models_dir: Annotated[Path, typer.Option(help=_("Folder of the model registry."))] = Path("models"),
    ) -> None:
        from duckmkt.insight import monitor_command as run

        try:
            run(db, model=model, name=name, models_dir=models_dir)
        except DuckmktError as error:
            fail(error, State.debug)

    @app.command("report", help=_("Write an HTML report of the model: gain, lift, calibration, importance, strategies, scores and drift."))
    def report_command(
        db: Annotated[Path, typer.Argument(help=_("DuckDB database file."))],
        output: Annotated[
            Path, typer.Option("--output", "-o", help=_("HTML file to write; one self-contained page."))
        ] = Path("report.html"),
        model: Annotated[
            Optional[str], typer.Option(help=_("Model version or model folder. Default: the newest version of NAME."))
        ] = None,
        name: Annotated[str, typer.Option(help=_("Model name under MODELS_DIR."))] = "customer",
        models_dir: Annotated[Path, typer.Option(help=_("Folder of the model registry."))] = Path("models"),
    ) -> None:
        from duckmkt.insight import report_command as run

        try:
            run(db, output, model=model, name=name, models_dir=models_dir)
        except DuckmktError as error:
            fail(error, State.debug)
