"""Budgeted targeting: mkt.target_customers, duckmkt.targeting and the target command."""

from __future__ import annotations

import duckdb
import pytest
import typer
from typer.testing import CliRunner

from duckmkt.cli import activate_language
from duckmkt.commands import actions
from duckmkt.errors import DataError
from duckmkt.scores import write_customer_scores
from duckmkt.scoring import register
from duckmkt.strategy import set_rule
from duckmkt.targeting import TargetingError, target_customers


@pytest.fixture
def scored_db(small_db_copy, trained_model_dir):
    con = duckdb.connect(str(small_db_copy))
    register(con, trained_model_dir)
    write_customer_scores(con)
    con.close()
    return small_db_copy


@pytest.fixture
def scored_con(scored_db):
    con = duckdb.connect(str(scored_db))
    yield con
    con.close()


def net_values(con, cost_per_contact: float, margin: float) -> dict[tuple[str, str], float]:
    """Net value of every (customer, action), computed here from the documented formula."""
    rows = con.execute(
        """
        select s.customer_id, e.action, s.expected_spend,
               case when e.action = r.action then e.spend_lift else e.off_strategy_lift end, e.cost_factor
        from mkt.customer_scores s
        cross join mkt.action_effects e
        left join mkt.strategy_rules r on r.code = s.strategy
        """
    ).fetchall()
    return {
        (customer, action): spend * lift * margin - cost_per_contact * factor
        for customer, action, spend, lift, factor in rows
    }


def test_target_customers_respects_budget(scored_con):
    plan = target_customers(scored_con, budget=200.0, cost_per_contact=2.0, margin=0.3)
    customers = [row[1] for row in plan.rows]

    assert len(plan.rows) > 0
    assert plan.total_cost <= 200.0
    assert len(customers) == len(set(customers))
    assert all(row[8] > 0 for row in plan.rows)
    assert plan.total_net_value == pytest.approx(plan.total_incremental_spend * 0.3 - plan.total_cost)


def test_target_customers_picks_best_action(scored_con):
    plan = target_customers(scored_con, budget=1e9, cost_per_contact=2.0, margin=0.3)
    values = net_values(scored_con, 2.0, 0.3)
    actions_by_customer: dict[str, dict[str, float]] = {}
    for (customer, action), value in values.items():
        actions_by_customer.setdefault(customer, {})[action] = value

    assert len(plan.rows) > 0
    for row in plan.rows:
        customer, action, net = row[1], row[3], row[8]
        assert net == pytest.approx(max(actions_by_customer[customer].values()))
        assert net == pytest.approx(actions_by_customer[customer][action])
    chosen = {row[1] for row in plan.rows}
    positive = {customer for customer, options in actions_by_customer.items() if max(options.values()) > 0}
    assert chosen == positive


def test_target_customers_equal_costs_take_top_net_values(scored_con):
    scored_con.execute("update mkt.action_effects set cost_factor = 1.0")
    plan = target_customers(scored_con, budget=50.0, cost_per_contact=1.0, margin=0.3)
    values = net_values(scored_con, 1.0, 0.3)
    best = {}
    for (customer, _action), value in values.items():
        best[customer] = max(best.get(customer, float("-inf")), value)
    expected = sorted((value for value in best.values() if value > 0), reverse=True)[:50]

    assert len(plan.rows) == min(50, len(expected))
    assert sorted((row[8] for row in plan.rows), reverse=True) == pytest.approx(expected)


def test_target_customers_uses_uplift_scores(scored_con):
    customer = scored_con.execute("select min(customer_id) from mkt.customer_scores").fetchall()[0][0]
    scored_con.execute(
        "insert into mkt.customer_uplift values (?, 'recommend_products', 0.6, 0.1, 0.5, 10000.0, 'test', now())", [customer]
    )
    plan = target_customers(scored_con, budget=10.0, cost_per_contact=1.0, margin=0.3)

    assert plan.rows[0][1] == customer
    assert plan.rows[0][3] == "recommend_products"
    assert plan.rows[0][4] == "uplift_model"
    assert plan.rows[0][6] == pytest.approx(10000.0)


def test_target_customers_zero_budget(scored_con):
    plan = target_customers(scored_con, budget=0.0, cost_per_contact=1.0)

    assert plan.rows == []
    assert plan.total_cost == 0


@pytest.mark.parametrize(
    "options, option_name",
    [
        ({"budget": -1.0, "cost_per_contact": 1.0}, "--budget"),
        ({"budget": 10.0, "cost_per_contact": 0.0}, "--cost-per-contact"),
        ({"budget": 10.0, "cost_per_contact": 1.0, "margin": 1.5}, "--margin"),
        ({"budget": float("nan"), "cost_per_contact": 1.0}, "--budget"),
        ({"budget": float("inf"), "cost_per_contact": 1.0}, "--budget is inf; give a finite number"),
        ({"budget": 10.0, "cost_per_contact": float("inf")}, "--cost-per-contact is inf; give a finite number"),
    ],
)
def test_target_customers_invalid_options(scored_con, options, option_name):
    with pytest.raises(TargetingError, match=option_name):
        target_customers(scored_con, **options)


def test_target_customers_without_scores(small_db_copy):
    con = duckdb.connect(str(small_db_copy))
    try:
        with pytest.raises(DataError, match="duckmkt score"):
            target_customers(con, budget=10.0, cost_per_contact=1.0)
    finally:
        con.close()


def invoke_target(scored_db):
    """Run `duckmkt target DB --budget 100 --cost-per-contact 2` in English; return the result."""
    activate_language("en")
    app = typer.Typer()
    actions.register(app)
    return CliRunner().invoke(app, ["target", str(scored_db), "--budget", "100", "--cost-per-contact", "2"])


def test_target_command_prints_plan(scored_db, caplog):
    with caplog.at_level("WARNING"):
        result = invoke_target(scored_db)

    assert result.exit_code == 0, result.output
    assert "expected net value" in result.output
    assert "mkt.target_customers(100.0, 2.0, 0.3)" in result.output
    # The shipped rules' actions are all valued or mean no contact.
    assert "has no row in mkt.action_effects" not in caplog.text


def test_target_command_invalid_budget_is_one_error_line(scored_db):
    activate_language("en")
    app = typer.Typer()
    actions.register(app)
    result = CliRunner().invoke(app, ["target", str(scored_db), "--budget", "-5", "--cost-per-contact", "2"])

    assert result.exit_code == 1
    assert result.output.strip().startswith("Error: --budget")
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("arguments", "message"),
    [("100, -1, 0.3", "cost_per_contact is -1"), ("-5, 1, 0.3", "budget is -5"), ("NULL, 1, 0.3", "budget is NULL"), ("100, 1, 1.5", "margin is 1.5")],
)
def test_target_macro_rejects_bad_arguments(scored_con, arguments, message):
    # The SQL macro checks what the CLI checks, so a negative cost cannot pick everyone.
    with pytest.raises(duckdb.Error, match=message):
        scored_con.execute(f"select count(*) from mkt.target_customers({arguments})").fetchall()


# Widens product_recommendation from the median down to the lowest quarter of
# purchase_prob, so some customers move from personalized_ad to it.
WIDER_RECOMMENDATION = "purchase_prob >= purchase_prob_low"


def test_target_after_rule_edit_requires_rescore(scored_con):
    set_rule(scored_con, "product_recommendation", condition=WIDER_RECOMMENDATION)

    with pytest.raises(DataError, match="before the strategy rules were last edited") as raised:
        target_customers(scored_con, budget=100.0, cost_per_contact=2.0)
    assert "duckmkt score DB" in str(raised.value)


def count_strategy(con, code: str) -> int:
    return con.execute("select count(*) from mkt.customer_scores where strategy = ?", [code]).fetchall()[0][0]


def test_target_after_rescore_uses_edited_rules(scored_con, trained_model_dir):
    n_before = count_strategy(scored_con, "product_recommendation")
    set_rule(scored_con, "product_recommendation", condition=WIDER_RECOMMENDATION)
    register(scored_con, trained_model_dir)
    write_customer_scores(scored_con)

    plan = target_customers(scored_con, budget=1e9, cost_per_contact=0.01)
    current = dict(
        scored_con.execute("select customer_id, (score_customer(f)).strategy from mkt.customer_features f").fetchall()
    )

    assert count_strategy(scored_con, "product_recommendation") > n_before
    assert len(plan.rows) > 0
    assert {row[1]: row[2] for row in plan.rows} == {row[1]: current[row[1]] for row in plan.rows}


def test_target_rejects_scores_without_rules_fingerprint(scored_con):
    # As written by a duckmkt that did not store the rules' fingerprint.
    scored_con.execute("alter table mkt.customer_scores drop column rules_fingerprint")

    with pytest.raises(DataError, match="older duckmkt"):
        target_customers(scored_con, budget=100.0, cost_per_contact=2.0)


@pytest.mark.parametrize(("language", "expected"), [("en", "Error: The strategies of"), ("zh", "错误：mkt.customer_scores 中")])
def test_target_command_stale_strategies_error(scored_db, language, expected):
    con = duckdb.connect(str(scored_db))
    set_rule(con, "product_recommendation", condition=WIDER_RECOMMENDATION)
    con.close()
    activate_language(language)
    app = typer.Typer()
    actions.register(app)
    try:
        result = CliRunner().invoke(app, ["target", str(scored_db), "--budget", "100", "--cost-per-contact", "2"])
    finally:
        activate_language("en")

    assert result.exit_code == 1
    assert result.output.strip().startswith(expected)
    assert "duckmkt score DB" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_target_command_warns_about_action_without_effects(scored_db, trained_model_dir, caplog):
    con = duckdb.connect(str(scored_db))
    # A new action, and every customer under it, so its customers are scored with it.
    set_rule(con, "retention", condition="true", action="vip_call")
    con.execute("update mkt.strategy_rules set priority = -1 where code = 'retention'")
    register(con, trained_model_dir)
    write_customer_scores(con)
    n_scored = con.execute("select count(*) from mkt.customer_scores where strategy = 'retention'").fetchall()[0][0]
    con.close()

    with caplog.at_level("WARNING"):
        result = invoke_target(scored_db)

    assert result.exit_code == 0, result.output
    assert n_scored > 0
    assert f"Strategy retention names the action vip_call, which has no row in mkt.action_effects, so its {n_scored:,} customers" in caplog.text
    assert "insert into mkt.action_effects values ('vip_call'" in caplog.text
