"""What the action commands do (strategy, train-recommender, target, uplift), callable without the CLI.

Each function runs one step, prints its results in the active language and
raises ``DuckmktError`` on failure. ``duckmkt.commands.actions`` only parses
options.
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from duckmkt import strategy
from duckmkt.database import connect_database
from duckmkt.errors import DuckmktError, IncompleteRuleError, StrategyRuleError
from duckmkt.i18n import N_, _
from duckmkt.registry import record_model
from duckmkt.tables import format_table

logger = logging.getLogger(__name__)

REASON_DESCRIPTIONS = {
    "strategy_action": N_("the action of the customer's strategy rule, at its assumed lift"),
    "other_action": N_("another action than the strategy's, at its lower assumed lift"),
    "uplift_model": N_("incremental spend from the uplift model"),
}


def echo(text: str = "") -> None:
    typer.echo(text)


# --- strategy -----------------------------------------------------------------


def print_rules(rules: list[strategy.StrategyRule]) -> None:
    rows = [(rule.priority, rule.code, rule.localized_label(), rule.channel, rule.action, rule.condition) for rule in rules]
    echo(format_table([_("priority"), _("code"), _("label"), _("channel"), _("action"), _("condition")], rows))


def strategy_show_command(db: Path) -> list[strategy.StrategyRule]:
    """Print the rules of ``db`` and the thresholds they are compiled with."""
    con = connect_database(db, create=False)
    try:
        rules = strategy.read_rules(con)
        stored = strategy.read_thresholds(con)
    finally:
        con.close()
    print_rules(rules)
    echo()
    if stored is None:
        echo(_("No thresholds yet: run 'duckmkt score DB' to take them from the model."))
    else:
        thresholds, version = stored
        echo(_("Thresholds of model version {version}:").format(version=version))
        rows = [
            (name, strategy.THRESHOLD_QUANTILES.get(name, ("", float("nan")))[0], strategy.THRESHOLD_QUANTILES.get(name, ("", float("nan")))[1], value)
            for name, value in thresholds.items()
        ]
        echo(format_table([_("threshold"), _("prediction"), _("quantile"), _("value")], rows))
    return rules


def _compile_after_edit(con) -> None:
    if strategy.read_thresholds(con) is None:
        echo(_("Rules saved; mkt.assign_strategy is compiled the first time you run 'duckmkt score DB'."))
        return
    strategy.compile_rules(con)
    echo(_("Rules saved and compiled into mkt.assign_strategy."))


def strategy_set_command(db: Path, code: str, **changes) -> strategy.StrategyRule:
    """Update or add the rule ``code`` in ``db``, recompile the macro and print the rules.

    An incomplete new rule is reported with the options of ``duckmkt
    strategy set`` rather than the column names ``set_rule`` uses.
    """
    con = connect_database(db, create=False)
    try:
        try:
            rule = strategy.set_rule(con, code, **changes)
        except IncompleteRuleError as error:
            options = ["--" + column.replace("_", "-") for column in error.missing]
            raise StrategyRuleError(strategy.incomplete_rule_message(error.code, options, error.suggestion)) from error
        _compile_after_edit(con)
        print_rules(strategy.read_rules(con))
    finally:
        con.close()
    return rule


def strategy_delete_command(db: Path, code: str) -> None:
    """Delete the rule ``code`` from ``db`` and recompile the macro."""
    con = connect_database(db, create=False)
    try:
        strategy.delete_rule(con, code)
        _compile_after_edit(con)
        print_rules(strategy.read_rules(con))
    finally:
        con.close()


def strategy_reset_command(db: Path) -> list[strategy.StrategyRule]:
    """Restore the default rules of ``db`` and recompile the macro."""
    con = connect_database(db, create=False)
    try:
        rules = strategy.reset_rules(con)
        _compile_after_edit(con)
    finally:
        con.close()
    print_rules(rules)
    return rules


def strategy_compile_command(db: Path, *, model: str | None = None, name: str = "customer", models_dir: Path = Path("models")) -> str:
    """Compile the rules of ``db`` into ``mkt.assign_strategy``, with a model's thresholds when ``model`` is given."""
    con = connect_database(db, create=False)
    try:
        if model is None:
            case_sql = strategy.compile_rules(con)
        else:
            from duckmkt.registry import load_metadata
            from duckmkt.scoring import resolve_model_dir

            metadata = load_metadata(resolve_model_dir(model, models_dir=models_dir, name=name))
            case_sql = strategy.compile_rules(
                con, metadata["strategy_thresholds"], str(metadata["version"]), metadata["feature_names"]
            )
    finally:
        con.close()
    echo(_("Compiled mkt.assign_strategy:"))
    echo(case_sql)
    return case_sql


# --- recommendations ----------------------------------------------------------


def train_recommender_command(
    db: Path,
    *,
    name: str = "recommender",
    models_dir: Path = Path("models"),
    horizon_days: int = 30,
    epochs: int | None = None,
    seed: int = 0,
    **trainer_params,
):
    """Train the product recommender on ``db``, export it to ONNX, save it and record it in ``mkt.models``.

    ``trainer_params`` go to ``RecommenderTrainer``, for example ``hidden_units``.
    """
    try:
        from duckmkt.recommend.trainer import train_recommender
    except ImportError as error:
        raise DuckmktError(
            _("Training needs TensorFlow and tf2onnx, which are not installed ({error}); install them with: pip install 'duckmkt[train]'").format(
                error=error
            )
        ) from error

    options = dict(trainer_params)
    if epochs is not None:
        options["epochs"] = epochs
    con = connect_database(db, create=False)
    try:
        from duckmkt.pipeline import print_progress

        result = train_recommender(
            con, models_dir=models_dir, name=name, horizon_days=horizon_days, seed=seed, progress=print_progress, **options
        )
        record_model(con, result.model_dir)
    finally:
        con.close()
    echo(
        _("{products:,} products, {train:,} training rows, {validation:,} validation rows, {epochs} epochs.").format(
            products=result.n_products, train=result.n_train_rows, validation=result.n_validation_rows, epochs=result.n_epochs
        )
    )
    echo(_("ONNX Runtime matches Keras within {difference:.2g}.").format(difference=result.parity_max_abs_diff))
    echo(_("Recommender saved to {path} in {seconds:.0f} s.").format(path=result.model_dir, seconds=result.seconds))
    return result


# --- targeting ----------------------------------------------------------------


def actions_without_effects(con) -> list[tuple[str, str, int]]:
    """Return (strategy, action, scored customers) for each scored strategy whose action mkt.action_effects lacks."""
    return con.execute(
        """
        select rules.code, rules.action, count(*)
        from mkt.customer_scores as scores
        join mkt.strategy_rules as rules on rules.code = scores.strategy
        where rules.action is not null
            -- The shipped no_action rule's action means "do not contact", which has no lift to value.
            and rules.action <> 'no_contact'
            and rules.action not in (select action from mkt.action_effects)
        group by rules.code, rules.action
        order by rules.code
        """
    ).fetchall()


def target_command(db: Path, *, budget: float, cost_per_contact: float, margin: float, limit: int = 20):
    """Pick customers and actions for ``budget`` and print the plan."""
    from duckmkt.targeting import target_customers

    con = connect_database(db, create=False)
    try:
        plan = target_customers(con, budget=budget, cost_per_contact=cost_per_contact, margin=margin)
        unvalued = actions_without_effects(con)
    finally:
        con.close()

    for code, action, n_customers in unvalued:
        logger.warning(
            _("Strategy %s names the action %s, which has no row in mkt.action_effects, so its %s customers are valued only with the other actions. Add the action's lift with SQL, for example: insert into mkt.action_effects values ('%s', 0.05, 0.02, 1.0, 'why this action works')"),
            code, action, f"{n_customers:,}", action,
        )
    echo(_("SQL: select * from mkt.target_customers({budget}, {cost}, {margin})").format(budget=budget, cost=cost_per_contact, margin=margin))
    rows = [
        (order, customer_id, strategy_code, action, _(REASON_DESCRIPTIONS.get(reason, reason)), spend, incremental, cost, net)
        for order, customer_id, strategy_code, action, reason, spend, incremental, cost, net, _cumulative in plan.rows[:limit]
    ]
    echo(
        format_table(
            ["#", "customer_id", _("strategy"), _("action"), _("why"), "expected_spend", _("incremental spend"), _("cost"), _("net value")],
            rows,
        )
    )
    if len(plan.rows) > limit:
        echo(_("... and {count:,} more customers.").format(count=len(plan.rows) - limit))
    echo()
    echo(format_table([_("action"), _("customers")], sorted(plan.actions().items())))
    echo()
    echo(
        _("{chosen:,} of {total:,} customers chosen; cost {cost:,.2f} of the budget {budget:,.2f}; expected incremental spend {spend:,.2f}; expected net value {net:,.2f} at margin {margin:.0%}.").format(
            chosen=len(plan.rows),
            total=plan.n_candidates,
            cost=plan.total_cost,
            budget=plan.budget,
            spend=plan.total_incremental_spend,
            net=plan.total_net_value,
            margin=margin,
        )
    )
    echo(_("Assumptions: the response lift of each action is in mkt.action_effects; edit it there with SQL."))
    return plan


# --- uplift -------------------------------------------------------------------


def uplift_command(db: Path, *, campaign: str, action: str, seed: int = 0):
    """Train the uplift model on ``campaign``, print its held-out evaluation and write ``mkt.customer_uplift``."""
    from duckmkt import uplift

    con = connect_database(db, create=False)
    try:
        rows = uplift.read_campaign(con, campaign)
        _model, evaluation, test = uplift.evaluate_campaign(rows, seed=seed)
        # The evaluation fits on part of the campaign; the scores use all of it.
        model = uplift.TLearnerUplift().fit(rows.features, rows.treatment, rows.responded)
        n_scored = uplift.write_customer_uplift(con, model, action=action, model_version=f"{campaign}@{rows.cutoff}")
    finally:
        con.close()

    echo(
        _("Campaign {campaign} from {cutoff}: {n:,} customers, {treated:,} contacted; evaluated on {test:,} held-out customers.").format(
            campaign=campaign, cutoff=rows.cutoff, n=len(rows.customer_ids), treated=int(rows.treatment.sum()), test=int(test.sum())
        )
    )
    table = [
        (_(UPLIFT_METHODS.get(method, method)), values["qini"], values["uplift_at_10"], values["uplift_at_30"])
        for method, values in evaluation.methods.items()
    ]
    echo(format_table([_("ranking"), _("Qini coefficient"), _("uplift at top 10%"), _("uplift at top 30%")], table))
    echo(_("{count:,} customers scored into mkt.customer_uplift for action {action}.").format(count=n_scored, action=action))
    return evaluation


UPLIFT_METHODS = {
    "uplift": N_("by modeled uplift"),
    "response": N_("by response probability when contacted"),
    "random": N_("random"),
}
