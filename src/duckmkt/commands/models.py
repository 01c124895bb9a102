"""Model registry, evaluation and feature catalog commands: models list|show|promote|rollback, evaluate, features."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from duckmkt.cli import fail
from duckmkt.commands.common import State, parse_date
from duckmkt.commands.localized import LocalizedTyper
from duckmkt.errors import DuckmktError
from duckmkt.i18n import _


def register(app: typer.Typer) -> None:
    """Add the ``models`` group and the ``evaluate`` and ``features`` commands to ``app``."""
    models = LocalizedTyper(help=_("List, inspect, promote and roll back trained model versions."), no_args_is_help=True)
    app.add_typer(models, name="models")

    @models.command("list", help=_("List the model versions recorded in mkt.models, newest first."))
    def list_command(
        db: Annotated[Path, typer.Argument(help=_("DuckDB database file."))],
        name: Annotated[Optional[str], typer.Option(help=_("Show only this model name. Default: every name."))] = None,
    ) -> None:
        from duckmkt.model_quality import models_list_command as run

        try:
            run(db, name=name)
        except DuckmktError as error:
            fail(error, State.debug)

    @models.command("show", help=_("Show one model version: training cutoffs, status and validation metrics."))
    def show_command(
        db: Annotated[Path, typer.Argument(help=_("DuckDB database file."))],
        version: Annotated[str, typer.Argument(help=_("Model version, for example 20250101T120000Z."))],
        name: Annotated[str, typer.Option(help=_("Model name under MODELS_DIR."))] = "customer",
    ) -> None:
        from duckmkt.model_quality import models_show_command as run

        try:
            run(db, version, name=name)
        except DuckmktError as error:
            fail(error, State.debug)

    @models.command(
        "promote",
        help=_("Promote a version: score_customer, or recommend_products for a recommender, uses it unless a version is named."),
    )
    def promote_command(
        db: Annotated[Path, typer.Argument(help=_("DuckDB database file."))],
        version: Annotated[str, typer.Argument(help=_("Model version to promote."))],
        name: Annotated[str, typer.Option(help=_("Model name under MODELS_DIR."))] = "customer",
        models_dir: Annotated[Path, typer.Option(help=_("Folder of the model registry."))] = Path("models"),
    ) -> None:
        from duckmkt.model_quality import models_promote_command as run

        try:
            run(db, version, name=name, models_dir=models_dir)
        except DuckmktError as error:
            fail(error, State.debug)

    @models.command("rollback", help=_("Demote the promoted version and promote the version promoted before it."))
    def rollback_command(db: Annotated[Path, typer.Argument(help=_("DuckDB database file."))], name: Annotated[str, typer.Option(help=_("Model name under MODELS_DIR."))] = "customer") -> None:
        from duckmkt.model_quality import models_rollback_command as run

        try:
            run(db, name=name)
        except DuckmktError as error:
            fail(error, State.debug)

    @app.command("evaluate", help=_("Compare the model with RFM rules, logistic regression on RFM and BG/NBD out of time."))
    def evaluate_command(
        db: Annotated[Path, typer.Argument(help=_("DuckDB database file."))],
        cutoff: Annotated[
            str, typer.Option(help=_("Evaluation cutoff (YYYY-MM-DD): features before it, labels after it."))
        ],
        model: Annotated[
            Optional[str], typer.Option(help=_("Model version or model folder. Default: the promoted version of NAME."))
        ] = None,
        name: Annotated[str, typer.Option(help=_("Model name under MODELS_DIR."))] = "customer",
        models_dir: Annotated[Path, typer.Option(help=_("Folder of the model registry."))] = Path("models"),
        horizon_days: Annotated[
            Optional[int], typer.Option(help=_("Days after the cutoff in which purchases and spend count. Default: the model's."))
        ] = None,
        churn_horizon_days: Annotated[
            Optional[int],
            typer.Option(help=_("Days without a purchase that count as churn. Default: the model's when the horizon is the model's.")),
        ] = None,
    ) -> None:
        from duckmkt.model_quality import evaluate_command as run

        try:
            run(
                db,
                cutoff=parse_date(cutoff, "--cutoff"),
                model=model,
                name=name,
                models_dir=models_dir,
                horizon_days=horizon_days,
                churn_horizon_days=churn_horizon_days,
            )
        except DuckmktError as error:
            fail(error, State.debug)

    @app.command("features", help=_("Write the feature catalog to mkt.feature_catalog and list it."))
    def features_command(db: Annotated[Path, typer.Argument(help=_("DuckDB database file."))]) -> None:
        from duckmkt.model_quality import features_command as run

        try:
            run(db)
        except DuckmktError as error:
            fail(error, State.debug)
