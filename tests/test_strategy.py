"""Strategy rules in mkt.strategy_rules: validation, compilation, score_customer and mkt.assign_strategy."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import duckdb
import numpy as np
import pytest

from duckmkt import i18n, strategy
from duckmkt.errors import IncompleteRuleError, StrategyRuleError
from duckmkt.scores import write_customer_scores

SCORED_WITH_MACRO = """
with scored as (
    select customer_id, f, score_customer(f) as score
    from mkt.customer_features as f
)
select customer_id, score.strategy, mkt.assign_strategy(score, f) as macro_strategy
from scored
order by customer_id
"""


def strategies(con) -> tuple[list[str], list[str]]:
    rows = con.execute(SCORED_WITH_MACRO).fetchall()
    return [row[1] for row in rows], [row[2] for row in rows]


def test_strategy_rules_seeded_with_defaults(rules_con):
    rules = strategy.read_rules(rules_con)

    assert [rule.code for rule in rules] == list(strategy.STRATEGIES)
    assert all(rule.label_en and rule.label_zh and rule.rationale for rule in rules)
    assert rules == strategy.read_default_rules(rules_con)


def test_strategy_thresholds_stored_from_metadata(rules_con, trained_model_dir):
    metadata = json.loads((trained_model_dir / "metadata.json").read_text())
    stored, version = strategy.read_thresholds(rules_con)

    assert stored == metadata["strategy_thresholds"]
    assert version == metadata["version"]


def test_assign_strategy_agrees_with_score_customer(rules_con):
    udf, macro = strategies(rules_con)

    assert len(udf) > 100
    assert udf == macro
    assert len(set(udf)) >= 3


def test_assign_strategy_agrees_after_set_rule(rules_con):
    before, _macro = strategies(rules_con)
    strategy.set_rule(rules_con, "retention", condition="churn_risk >= purchase_prob_low or recency_days > 200")
    strategy.compile_rules(rules_con)
    after, macro = strategies(rules_con)

    assert after == macro
    assert after.count("retention") > before.count("retention")


def test_score_customer_uses_sql_edit_without_compile(rules_con):
    before, _macro = strategies(rules_con)
    rules_con.execute("update mkt.strategy_rules set condition = 'false' where code = 'product_recommendation'")
    after = [row[0] for row in rules_con.execute("select score_customer(f).strategy from mkt.customer_features f order by customer_id").fetchall()]

    assert "product_recommendation" in before
    assert "product_recommendation" not in after
    with pytest.raises(duckdb.Error, match="strategy compile"):
        rules_con.execute(SCORED_WITH_MACRO).fetchall()

    strategy.compile_rules(rules_con)
    udf, macro = strategies(rules_con)
    assert udf == macro == after


def test_assign_strategy_new_rule_inserted_with_sql(rules_con):
    rules_con.execute(
        """
        insert into mkt.strategy_rules values
            (5, 'win_back', 'recency_days > 180 and frequency >= 2', 'Win back', '召回', 'email', 'win_back_offer', 'Lapsed repeat buyers.')
        """
    )
    strategy.compile_rules(rules_con)
    udf, macro = strategies(rules_con)
    expected = rules_con.execute(
        "select recency_days > 180 and frequency >= 2 from mkt.customer_features order by customer_id"
    ).fetchall()

    assert udf == macro
    assert [code == "win_back" for code in udf] == [row[0] for row in expected]


def test_default_rules_match_numpy_reference(rules_con, trained_model_dir):
    thresholds = json.loads((trained_model_dir / "metadata.json").read_text())["strategy_thresholds"]
    rows = rules_con.execute(
        "select score_customer(f), f.monetary_value from mkt.customer_features f order by customer_id"
    ).fetchall()
    scores = [row[0] for row in rows]
    expected = strategy.assign_strategies(
        *(np.array([score[head] for score in scores]) for head in strategy.PREDICTION_NAMES),
        thresholds,
        np.array([row[1] for row in rows]),
    )

    assert [score["strategy"] for score in scores] == expected.tolist()


@pytest.mark.parametrize(
    ("condition", "message"),
    [("recency_days > 'abc'", "cannot evaluate"), ("purchase_prob", "not true or false"), ("recency_days + 1", "DOUBLE")],
)
def test_strategy_condition_not_boolean_rejected(rules_con, condition, message):
    # These parse, but would fail or match nearly everyone when scoring.
    before = strategy.read_rules(rules_con)

    with pytest.raises(StrategyRuleError, match=message):
        strategy.set_rule(rules_con, "retention", condition=condition)
    assert strategy.read_rules(rules_con) == before
    assert rules_con.execute("select count(score_customer(f).strategy) from mkt.customer_features f").fetchall()[0][0] > 0


@pytest.mark.parametrize(
    "condition",
    [
        "(select count(*) from raw.order_lines) > 0",
        "exists (select 1 from mkt.strategy_rules)",
        "true; drop table mkt.strategy_rules",
        "read_csv('/etc/passwd') is not null",
        "getvariable('x') = 1",
        "customer_id = '12345'",
        "f.recency_days > 1",
        "no_such_feature > 1",
        "list_transform([1], x -> x) is not null",
        "recency_days > $1",
        "true from mkt.strategy_rules",
        "recency_days >",
        "",
    ],
)
def test_strategy_condition_hostile_rejected(rules_con, condition):
    before = strategy.read_rules(rules_con)

    with pytest.raises(StrategyRuleError, match="retention"):
        strategy.set_rule(rules_con, "retention", condition=condition)
    assert strategy.read_rules(rules_con) == before


def test_score_customer_rejects_hostile_sql_rule(rules_con):
    rules_con.execute("update mkt.strategy_rules set condition = '(select count(*) from raw.order_lines) > 0' where code = 'retention'")

    with pytest.raises(duckdb.Error, match="not allowed"):
        rules_con.execute("select score_customer(f) from mkt.customer_features f").fetchall()
    with pytest.raises(StrategyRuleError, match="subquery"):
        strategy.compile_rules(rules_con)


def test_compile_condition_keeps_threshold_exact():
    thresholds = {"churn_risk_high": 0.1 + 0.2}
    sql = strategy.compile_condition("churn_risk >= churn_risk_high", "r", thresholds, strategy.allowed_names())
    value = duckdb.connect().execute(f"select {sql.replace('scores.churn_risk', '0.30000000000000004::double')}").fetchall()[0][0]

    assert "CAST('0.30000000000000004' AS DOUBLE)" in sql
    assert value is True


def test_set_rule_duplicate_priority_rejected(rules_con):
    with pytest.raises(StrategyRuleError, match="both have priority 20") as raised:
        strategy.set_rule(rules_con, "retention", priority=20)

    # The edited rule is named, whichever of the two the check meets first.
    assert "retention" in str(raised.value)
    assert "tailored_service" in str(raised.value)


def test_strategy_condition_second_statement_rejected(rules_con):
    with pytest.raises(StrategyRuleError, match="more than one statement") as raised:
        strategy.set_rule(rules_con, "retention", condition="churn_risk > 0.5; drop table mkt.strategy_rules")

    assert "Only SELECT" not in str(raised.value)


@pytest.mark.parametrize(
    ("condition", "suggestion"),
    [
        ("purchse_prob >= purchase_prob_median", "purchase_prob"),
        ("churn_risk >= churn_risk_hgh", "churn_risk_high"),
        ("Recency_Dayz < 90", "recency_days"),
        ("f.recency_days > 1", "recency_days"),
    ],
)
def test_strategy_condition_unknown_name_suggested(rules_con, condition, suggestion):
    before = strategy.read_rules(rules_con)

    with pytest.raises(StrategyRuleError) as raised:
        strategy.set_rule(rules_con, "retention", condition=condition)
    assert f"did you mean {suggestion}?" in str(raised.value)
    assert strategy.read_rules(rules_con) == before


def test_strategy_condition_unknown_name_without_match(rules_con):
    with pytest.raises(StrategyRuleError) as raised:
        strategy.set_rule(rules_con, "retention", condition="zzz > 1")

    assert "unknown name zzz;" in str(raised.value)
    assert "did you mean" not in str(raised.value)


def test_strategy_unknown_name_suggested_in_chinese(rules_con):
    previous = i18n.get_language()
    i18n.set_language("zh")
    try:
        with pytest.raises(StrategyRuleError) as raised:
            strategy.set_rule(rules_con, "retention", condition="purchse_prob >= purchase_prob_median")
    finally:
        i18n.set_language(previous)

    assert "未知名称 purchse_prob；是否应为 purchase_prob？" in str(raised.value)


def test_set_rule_unknown_column_suggested(rules_con):
    with pytest.raises(StrategyRuleError, match=r"column conditon; did you mean condition\?"):
        strategy.set_rule(rules_con, "retention", conditon="true")


def test_set_rule_mistyped_code_suggested(rules_con):
    with pytest.raises(StrategyRuleError, match=r"retension does not exist; did you mean retention\?"):
        strategy.set_rule(rules_con, "retension", condition="true")


def test_delete_rule_mistyped_code_suggested(rules_con):
    before = strategy.read_rules(rules_con)

    with pytest.raises(StrategyRuleError, match=r"no_acton does not exist; did you mean no_action\?"):
        strategy.delete_rule(rules_con, "no_acton")
    assert strategy.read_rules(rules_con) == before


def test_set_rule_new_rule_needs_columns(rules_con):
    with pytest.raises(IncompleteRuleError) as raised:
        strategy.set_rule(rules_con, "win_back", condition="true")

    # The Python API names the columns of mkt.strategy_rules.
    assert "a new rule needs priority, label_en, channel, action." in str(raised.value)
    assert raised.value.missing == ["priority", "label_en", "channel", "action"]


def test_reset_rules_restores_defaults(rules_con):
    strategy.set_rule(rules_con, "retention", condition="false")
    strategy.delete_rule(rules_con, "no_action")
    rules = strategy.reset_rules(rules_con)

    assert rules == strategy.read_default_rules(rules_con)


def test_assign_strategy_other_model_version_rejected(rules_con):
    with pytest.raises(duckdb.Error, match="another version"):
        rules_con.execute(
            """
            select mkt.assign_strategy(
                {'purchase_prob': 0.5, 'expected_spend': 10.0, 'churn_risk': 0.1, 'model_version': 'other'}, f)
            from mkt.customer_features f
            """
        ).fetchall()


def test_strategy_summary_view(rules_con):
    n_customers = write_customer_scores(rules_con)
    summary = rules_con.execute(
        "select strategy, n_customers, total_expected_spend, label_zh from mkt.strategy_summary"
    ).fetchall()
    direct = dict(
        rules_con.execute("select strategy, count(*) from mkt.customer_scores group by strategy").fetchall()
    )
    spend = rules_con.execute("select sum(expected_spend) from mkt.customer_scores").fetchall()[0][0]

    assert sum(row[1] for row in summary) == n_customers
    assert {row[0]: row[1] for row in summary} == direct
    assert sum(row[2] for row in summary) == pytest.approx(spend)
    assert all(row[3] for row in summary)


def strategy_app():
    import typer

    from duckmkt.cli import activate_language
    from duckmkt.commands import actions

    activate_language("en")
    app = typer.Typer()
    actions.register(app)
    return app


def invoke_in_language(language: str, args: list[str]):
    """Run a strategy command with the CLI in ``language``, then switch back to English."""
    from typer.testing import CliRunner

    from duckmkt.cli import activate_language

    app = strategy_app()
    activate_language(language)
    try:
        return CliRunner().invoke(app, args)
    finally:
        activate_language("en")


def test_strategy_commands_show_set_reset(rules_con, small_db_copy):
    from typer.testing import CliRunner

    rules_con.close()
    runner = CliRunner()
    app = strategy_app()
    shown = runner.invoke(app, ["strategy", "show", str(small_db_copy)])
    changed = runner.invoke(app, ["strategy", "set", str(small_db_copy), "retention", "--condition", "churn_risk >= 0.9"])
    con = duckdb.connect(str(small_db_copy), read_only=True)
    condition = con.execute("select condition from mkt.strategy_rules where code = 'retention'").fetchall()[0][0]
    macro = con.execute("select macro_definition from duckdb_functions() where function_name = 'assign_strategy'").fetchall()
    con.close()
    reset = runner.invoke(app, ["strategy", "reset", str(small_db_copy)])

    assert shown.exit_code == 0, shown.output
    assert "churn_risk_high" in shown.output
    assert "retention" in shown.output
    assert changed.exit_code == 0, changed.output
    assert condition == "churn_risk >= 0.9"
    assert "0.9" in str(macro)
    assert reset.exit_code == 0, reset.output
    assert "churn_risk >= churn_risk_high and" in reset.output


@pytest.mark.parametrize(
    ("lang", "expected"),
    [("en_US.UTF-8", "unknown name purchse_prob; did you mean purchase_prob?"), ("zh_CN.UTF-8", "未知名称 purchse_prob；是否应为 purchase_prob？")],
)
def test_strategy_set_typo_suggested_in_locale(rules_con, small_db_copy, lang, expected):
    rules_con.close()
    env = {key: value for key, value in os.environ.items() if key not in ("LC_ALL", "LC_MESSAGES", "LANGUAGE")}
    env["LANG"] = lang
    result = subprocess.run(
        [sys.executable, "-m", "duckmkt", "strategy", "set", str(small_db_copy), "product_recommendation",
         "--condition", "purchse_prob >= purchase_prob_median"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )

    assert result.returncode == 1, result.stderr
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_strategy_set_hostile_condition_is_one_error_line(rules_con, small_db_copy):
    from typer.testing import CliRunner

    rules_con.close()
    result = CliRunner().invoke(
        strategy_app(), ["strategy", "set", str(small_db_copy), "retention", "--condition", "(select 1) = 1"]
    )

    assert result.exit_code == 1
    assert result.output.strip().startswith("Error: Strategy rule retention: a subquery is not allowed")
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", "Error: Strategy rule retension does not exist; did you mean retention? A new rule needs --priority, --label-en, --channel, --action."),
        ("zh", "错误：策略规则 retension 不存在；是否应为 retention？新规则需要提供 --priority, --label-en, --channel, --action。"),
    ],
)
def test_strategy_set_new_rule_names_options(rules_con, small_db_copy, language, expected):
    rules_con.close()
    result = invoke_in_language(language, ["strategy", "set", str(small_db_copy), "retension", "--condition", "true"])

    assert result.exit_code == 1
    assert result.output.strip() == expected


@pytest.mark.parametrize(
    ("condition", "suggestion"),
    [
        ("churn_risk >== churn_risk_high", ">="),
        ("recency_days =< 90", "<="),
        ("recency_days => 90", ">="),
        ("recency_days !== 90", "!="),
        ("recency_days === 90", "="),
    ],
)
def test_strategy_condition_invalid_operator_suggested(rules_con, condition, suggestion):
    before = strategy.read_rules(rules_con)

    with pytest.raises(StrategyRuleError) as raised:
        strategy.set_rule(rules_con, "retention", condition=condition)
    operator = condition.split()[1]
    assert f"invalid operator {operator}; did you mean {suggestion}?" in str(raised.value)
    assert "function" not in str(raised.value)
    assert strategy.read_rules(rules_con) == before


def test_strategy_condition_invalid_operator_without_match(rules_con):
    with pytest.raises(StrategyRuleError) as raised:
        strategy.set_rule(rules_con, "retention", condition="recency_days >=< 90")

    assert "invalid operator >=<; compare with =, <>, <, <=, > or >=" in str(raised.value)
    assert "did you mean" not in str(raised.value)


def test_strategy_condition_duckdb_operator_not_allowed(rules_con):
    # ^ is DuckDB's power operator: valid SQL, but not on the allow-list.
    with pytest.raises(StrategyRuleError) as raised:
        strategy.set_rule(rules_con, "retention", condition="recency_days ^ 2 > 90")

    assert "operator ^ is not allowed in a condition" in str(raised.value)
    assert "invalid operator" not in str(raised.value)


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", "Error: Strategy rule retention: invalid operator >==; did you mean >=? Compare with"),
        ("zh", "错误：策略规则 retention：运算符 >== 无效；是否应为 >=？比较请用"),
    ],
)
def test_strategy_set_invalid_operator_in_language(rules_con, small_db_copy, language, expected):
    rules_con.close()
    result = invoke_in_language(
        language, ["strategy", "set", str(small_db_copy), "retention", "--condition", "churn_risk >== churn_risk_high"]
    )

    assert result.exit_code == 1
    assert result.output.strip().startswith(expected)
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("condition", "english", "chinese"),
    [
        ("(select 1) = 1", "a subquery", "子查询"),
        ("recency_days > $1", "a parameter ($1 or ?)", "参数（$1 或 ?）"),
        ("sum(recency_days) over () > 1", "a window function (OVER)", "窗口函数（OVER）"),
        ("recency_days[1] > 1", "a subscript [i]", "下标 [i]"),
        ("try(recency_days) > 1", "TRY()", "TRY()"),
    ],
)
def test_strategy_rejected_construct_named_in_chinese(rules_con, condition, english, chinese):
    previous = i18n.get_language()
    try:
        i18n.set_language("en")
        with pytest.raises(StrategyRuleError) as in_english:
            strategy.set_rule(rules_con, "retention", condition=condition)
        i18n.set_language("zh")
        with pytest.raises(StrategyRuleError) as in_chinese:
            strategy.set_rule(rules_con, "retention", condition=condition)
    finally:
        i18n.set_language(previous)

    assert f"Strategy rule retention: {english} is not allowed in a condition" in str(in_english.value)
    assert f"条件中不允许使用 {chinese}；" in str(in_chinese.value)
    assert "subquery" not in str(in_chinese.value)
