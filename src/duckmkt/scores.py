"""Materialize scores: ``mkt.customer_scores``, one row per customer.

Each row contains the customer's key, every field of ``score_customer`` (the
predictions, the strategy and the model version), ``input_hash``,
``rules_fingerprint`` and ``scored_at``. ``rules_fingerprint`` is the
fingerprint of the strategy rules the run scored with, so a reader can tell
strategies assigned before a rule edit. ``input_hash`` is the md5 of the
customer's feature values, the model version and the strategy rules'
fingerprint, so a later run with ``changed=True`` rescores only the
customers whose hash differs (and all of them after a new model or an
edited rule).

Every run writes in one transaction: a reader sees the old table or the new
one, never a partial one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone

import duckdb

from duckmkt.errors import DataError
from duckmkt.i18n import _

logger = logging.getLogger(__name__)

KEY_COLUMNS = ("customer_id", "cutoff_date")


@dataclass(frozen=True)
class ScoreRun:
    """Customer counts of one run of ``materialize_scores``."""

    n_customers: int
    n_scored: int
    n_removed: int
    full: bool

    @property
    def n_unchanged(self) -> int:
        return self.n_customers - self.n_scored


def materialize_scores(
    con: duckdb.DuckDBPyConnection, *, model_version: str = "", changed: bool = False
) -> ScoreRun:
    """Score ``mkt.customer_features`` into ``mkt.customer_scores`` and return the counts.

    ``score_customer`` must be registered on ``con`` with the model of
    ``model_version``. With ``changed`` only new customers and customers
    whose ``input_hash`` differs are scored, and customers no longer in
    ``mkt.customer_features`` are removed. Without it, or when the table
    has no ``input_hash`` column or rows of another model version, every
    customer is scored and the table is replaced.
    """
    n_customers = con.execute("select count(*) from mkt.customer_features").fetchall()[0][0]
    if n_customers == 0:
        raise DataError(_("mkt.customer_features is empty; load order lines with 'duckmkt load' first."))

    full = not changed or not _can_update(con, model_version)
    scored_at = datetime.now(timezone.utc).replace(tzinfo=None)
    inputs_sql = _inputs_sql(con)
    parameters = {"model_version": model_version, "rules": current_rules_fingerprint(con)}

    con.execute("begin transaction")
    try:
        con.execute(f"create or replace temp table scoring_inputs as {inputs_sql}", parameters)
        if full:
            n_scored, n_removed = _score_all(con, scored_at)
        else:
            n_scored, n_removed = _score_changed(con, scored_at)
        con.execute("drop table scoring_inputs")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise

    run = ScoreRun(n_customers=n_customers, n_scored=n_scored, n_removed=n_removed, full=full)
    logger.info(
        "Scored %d of %d customers into mkt.customer_scores (%s run), removed %d",
        run.n_scored,
        run.n_customers,
        "full" if full else "changed-only",
        run.n_removed,
    )
    return run


def write_customer_scores(con: duckdb.DuckDBPyConnection) -> int:
    """Score every customer into ``mkt.customer_scores``; return the row count."""
    return materialize_scores(con).n_scored


def _inputs_sql(con: duckdb.DuckDBPyConnection) -> str:
    """Return the query of the key, the feature struct and the input hash of every customer."""
    columns = [row[0] for row in con.execute("describe mkt.customer_features").fetchall()]
    packed = ", ".join(f'"{name}" := f."{name}"' for name in columns if name not in KEY_COLUMNS)
    # to_json writes every value with its full precision, so equal JSON
    # means equal features.
    return f"""
        select
            f.customer_id,
            f.cutoff_date,
            f as features,
            $rules as rules_fingerprint,
            md5(to_json(struct_pack(model_version := $model_version, rules := $rules, {packed}))) as input_hash,
        from mkt.customer_features as f
    """


_SCORED_SQL = """
    with
    changed_inputs as (
        select * from scoring_inputs {where}
    ),
    scored as (
        select customer_id, cutoff_date, input_hash, rules_fingerprint, score_customer(features) as score
        from changed_inputs
    ),
    final as (
        select customer_id, cutoff_date, unnest(score), input_hash, rules_fingerprint, $scored_at::timestamp as scored_at,
        from scored
    )
    select * from final
"""


def _score_all(con: duckdb.DuckDBPyConnection, scored_at: datetime) -> tuple[int, int]:
    con.execute(
        "create or replace table mkt.customer_scores as " + _SCORED_SQL.format(where=""), {"scored_at": scored_at}
    )
    return con.execute("select count(*) from mkt.customer_scores").fetchall()[0][0], 0


def _score_changed(con: duckdb.DuckDBPyConnection, scored_at: datetime) -> tuple[int, int]:
    n_removed = con.execute(
        "select count(*) from mkt.customer_scores where customer_id not in (select customer_id from scoring_inputs)"
    ).fetchall()[0][0]
    # Rows of removed customers and rows whose inputs changed go; the
    # changed ones come back rescored with the new customers.
    con.execute(
        """
        delete from mkt.customer_scores as s
        where not exists (
            select 1 from scoring_inputs as i
            where i.customer_id = s.customer_id and i.input_hash = s.input_hash
        )
        """
    ).fetchall()
    n_scored = con.execute(
        "insert into mkt.customer_scores by name "
        + _SCORED_SQL.format(where="where customer_id not in (select customer_id from mkt.customer_scores)"),
        {"scored_at": scored_at},
    ).fetchall()[0][0]
    return n_scored, n_removed


def _can_update(con: duckdb.DuckDBPyConnection, model_version: str) -> bool:
    """Return whether mkt.customer_scores has every column of this duckmkt and only rows of ``model_version``.

    Another model version may have other outputs, hence other columns, so
    its table is replaced whole. So is a table written before input_hash or
    rules_fingerprint existed.
    """
    rows = con.execute(
        """
        select count(*) from duckdb_columns()
        where schema_name = 'mkt' and table_name = 'customer_scores'
            and column_name in ('input_hash', 'rules_fingerprint')
        """
    ).fetchall()
    if rows[0][0] < 2:
        return False
    other_versions = con.execute(
        "select count(*) from mkt.customer_scores where model_version is distinct from $version", {"version": model_version}
    ).fetchall()[0][0]
    return other_versions == 0


def current_rules_fingerprint(con: duckdb.DuckDBPyConnection) -> str:
    """Return the md5 of the strategy rules, or '' when the database has none."""
    exists = con.execute(
        "select count(*) from duckdb_views() where schema_name = 'mkt' and view_name = 'strategy_rules_fingerprint'"
    ).fetchall()[0][0]
    if not exists:
        return ""
    return con.execute("select fingerprint from mkt.strategy_rules_fingerprint").fetchall()[0][0]


def strategy_summary(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """Return (strategy, English label, Chinese label, customers, mean purchase_prob, total expected_spend, mean churn_risk) rows.

    Reads the view ``mkt.strategy_summary``. The labels are those of the rule
    in ``mkt.strategy_rules``, NULL for a code that no rule has.
    """
    return con.execute(
        """
        select strategy, label_en, label_zh, n_customers, avg_purchase_prob, total_expected_spend, avg_churn_risk
        from mkt.strategy_summary
        """
    ).fetchall()
