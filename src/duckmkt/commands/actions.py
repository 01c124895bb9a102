"""The action commands: strategy (show, set, delete, reset, compile), train-recommender, target and uplift."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from duckmkt.cli import fail
from duckmkt.commands.common import State
from duckmkt.commands.localized import LocalizedTyper
from duckmkt.errors import DuckmktError
from duckmkt.i18n import _


def register(app: typer.Typer) -> None:
    """Add the action commands to ``app``."""
    strategy_app = LocalizedTyper(
        name="strategy", help=_("Show and edit the strategy rules in mkt.strategy_rules."), no_args_is_help=True
    )
    app.add_typer(strategy_app)

    @strategy_app.command("show", help=_("Show the rules in priority order and the thresholds they use."))
    def strategy_show(db: Annotated[Path, typer.Argument(help=_("DuckDB database file."))]) -> None:
        from duckmkt.action_commands import strategy_show_command as run

        try:
            run(db)
        except DuckmktError as error:
            fail(error, State.debug)

    @strategy_app.command("set", help=_("Change a rule, or add it when CODE is new, then recompile mkt.assign_strategy."))
    def strategy_set(
        db: Annotated[Path, typer.Argument(help=_("DuckDB database file."))],
        code: Annotated[str, typer.Argument(help=_("Stable code of the rule to change or add, for example retention."))],
        condition: Annotated[
            Optional[str],
            typer.Option(help=_("SQL condition over the predictions, thresholds and features, for example 'churn_risk >= churn_risk_high'.")),
        ] = None,
        priority: Annotated[Optional[int], typer.Option(help=_("Priority; rules are checked from the lowest number."))] = None,
        label_en: Annotated[Optional[str], typer.Option(help=_("Label in English."))] = None,
        label_zh: Annotated[Optional[str], typer.Option(help=_("Label in Chinese. Default for a new rule: the English label."))] = None,
        channel: Annotated[Optional[str], typer.Option(help=_("Channel code, for example email or phone."))] = None,
        action: Annotated[Optional[str], typer.Option(help=_("Action code, for example retention_offer."))] = None,
        rationale: Annotated[Optional[str], typer.Option(help=_("Short reason for the rule."))] = None,
    ) -> None:
        from duckmkt.action_commands import strategy_set_command as run

        try:
            run(
                db, code, condition=condition, priority=priority, label_en=label_en, label_zh=label_zh,
                channel=channel, action=action, rationale=rationale,
            )
        except DuckmktError as error:
            fail(error, State.debug)

    @strategy_app.command("delete", help=_("Delete a rule, then recompile mkt.assign_strategy."))
    def strategy_delete(
        db: Annotated[Path, typer.Argument(help=_("DuckDB database file."))],
        code: Annotated[str, typer.Argument(help=_("Code of the rule to delete."))],
    ) -> None:
        from duckmkt.action_commands import strategy_delete_command as run

        try:
            run(db, code)
        except DuckmktError as error:
            fail(error, State.debug)

    @strategy_app.command("reset", help=_("Replace every rule with the shipped defaults."))
    def strategy_reset(db: Annotated[Path, typer.Argument(help=_("DuckDB database file."))]) -> None:
        from duckmkt.action_commands import strategy_reset_command as run

        try:
            run(db)
        except DuckmktError as error:
            fail(error, State.debug)

    @strategy_app.command("compile", help=_("Compile the rules into the SQL macro mkt.assign_strategy, for example after editing them with SQL."))
    def strategy_compile(
        db: Annotated[Path, typer.Argument(help=_("DuckDB database file."))],
        model: Annotated[
            Optional[str], typer.Option(help=_("Model version or folder whose thresholds to use. Default: the stored thresholds."))
        ] = None,
        name: Annotated[str, typer.Option(help=_("Model name under MODELS_DIR."))] = "customer",
        models_dir: Annotated[Path, typer.Option(help=_("Folder of the model registry."))] = Path("models"),
    ) -> None:
        from duckmkt.action_commands import strategy_compile_command as run

        try:
            run(db, model=model, name=name, models_dir=models_dir)
        except DuckmktError as error:
            fail(error, State.debug)

    @app.command("train-recommender", help=_("Train the product recommender, export it to ONNX and save it."))
    def train_recommender_command(
        db: Annotated[Path, typer.Argument(help=_("DuckDB database file with loaded order lines."))],
        name: Annotated[str, typer.Option(help=_("Model name; versions are saved under MODELS_DIR/NAME/."))] = "recommender",
        models_dir: Annotated[Path, typer.Option(help=_("Folder of the model registry."))] = Path("models"),
        horizon_days: Annotated[int, typer.Option(help=_("Days after each training cutoff whose purchases the model learns to predict."))] = 30,
        epochs: Annotated[Optional[int], typer.Option(help=_("Maximum number of training epochs."))] = None,
        seed: Annotated[int, typer.Option(help=_("Random seed; the same data and seed give the same model."))] = 0,
    ) -> None:
        from duckmkt.action_commands import train_recommender_command as run

        try:
            run(db, name=name, models_dir=models_dir, horizon_days=horizon_days, epochs=epochs, seed=seed)
        except DuckmktError as error:
            fail(error, State.debug)

    @app.command("target", help=_("Pick the customers and actions with the highest expected net value within a budget."))
    def target_command(
        db: Annotated[Path, typer.Argument(help=_("DuckDB database file with scores from 'duckmkt score'."))],
        budget: Annotated[float, typer.Option(help=_("Total contact budget, in the currency of the order lines."))],
        cost_per_contact: Annotated[
            float, typer.Option(help=_("Cost of one contact, in the same currency; mkt.action_effects scales it per action."))
        ],
        margin: Annotated[float, typer.Option(help=_("Gross margin as a share of spend, between 0 and 1."))] = 0.3,
        limit: Annotated[int, typer.Option(help=_("Number of chosen customers to show."))] = 20,
    ) -> None:
        from duckmkt.action_commands import target_command as run

        try:
            run(db, budget=budget, cost_per_contact=cost_per_contact, margin=margin, limit=limit)
        except DuckmktError as error:
            fail(error, State.debug)

    @app.command("uplift", help=_("Train an uplift model on a campaign with a control group, evaluate it and score every customer."))
    def uplift_command(
        db: Annotated[Path, typer.Argument(help=_("DuckDB database file with campaign interactions that have a treatment flag."))],
        campaign: Annotated[str, typer.Option(help=_("Campaign id in the interactions."))],
        action: Annotated[str, typer.Option(help=_("Action code the campaign used, as in mkt.action_effects."))] = "personalized_offer",
        seed: Annotated[int, typer.Option(help=_("Random seed of the held-out split."))] = 0,
    ) -> None:
        from duckmkt.action_commands import uplift_command as run

        try:
            run(db, campaign=campaign, action=action, seed=seed)
        except DuckmktError as error:
            fail(error, State.debug)
