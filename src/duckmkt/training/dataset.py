"""Training and validation rows read from the SQL feature and label macros.

The cutoffs and horizons form a ``TrainingWindow``. Settings left as None are
derived from the dates of the loaded sales. The window is checked so that
every label window is fully observed and the training labels end on or before
the validation cutoff, so no order of the validation period leaks into
training.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta

import duckdb
import numpy as np
import polars as pl

from duckmkt import features, sql_views
from duckmkt.errors import DataError, DuckmktError
from duckmkt.i18n import _

logger = logging.getLogger(__name__)

DEFAULT_HORIZON_DAYS = 60
DEFAULT_CHURN_HORIZON_DAYS = 120

# Fewer rows than this give metrics too noisy to compare with the baselines.
MIN_ROWS = 50

# The temporary table a training run copies the staged order lines into, and
# the columns of mkt.stg_order_lines that the feature and label macros read.
CACHED_LINES_TABLE = "duckmkt_training_lines"
CACHED_LINE_COLUMNS = ("customer_id", "order_id", "ordered_at", "product_id", "quantity", "amount", "line_status")

LABEL_COLUMNS = ("purchased", "spend", "churned", "n_purchases")
BINARY_LABELS = ("purchased", "churned")

LABEL_DEFINITIONS = {
    "purchased": "1 when the customer has at least one order in [cutoff, cutoff + horizon_days), else 0.",
    "spend": "Sum of order values in [cutoff, cutoff + horizon_days), in the currency of unit_price; 0 without orders.",
    "churned": "1 when the customer has no order in [cutoff, cutoff + churn_horizon_days), else 0.",
    "n_purchases": "Number of distinct days with an order in [cutoff, cutoff + horizon_days).",
}


@dataclass(frozen=True)
class TrainingWindow:
    """Cutoffs and horizons of one training run, with the names of the settings that were derived."""

    train_cutoff: date
    validation_cutoff: date
    horizon_days: int
    churn_horizon_days: int
    first_sale_day: date
    last_sale_day: date
    derived: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "train_cutoff": self.train_cutoff.isoformat(),
            "validation_cutoff": self.validation_cutoff.isoformat(),
            "horizon_days": self.horizon_days,
            "churn_horizon_days": self.churn_horizon_days,
        }


@dataclass
class LabeledRows:
    """Feature matrix and labels of every customer active before one cutoff.

    ``customer_ids`` stay in memory to align baselines and are never written
    into a model folder.
    """

    cutoff: date
    feature_names: tuple[str, ...]
    matrix: np.ndarray
    labels: dict[str, np.ndarray]
    customer_ids: np.ndarray = field(repr=False)
    # Cutoff of each row; rows stacked from several cutoffs differ here.
    row_cutoffs: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_rows(self) -> int:
        return int(self.matrix.shape[0])


def stack_rows(parts: list[LabeledRows]) -> LabeledRows:
    """Concatenate rows read at several cutoffs; ``cutoff`` of the result is the latest one."""
    if len(parts) == 1:
        return parts[0]
    return LabeledRows(
        cutoff=max(part.cutoff for part in parts),
        feature_names=parts[0].feature_names,
        matrix=np.ascontiguousarray(np.vstack([part.matrix for part in parts])),
        labels={label: np.concatenate([part.labels[label] for part in parts]) for label in parts[0].labels},
        customer_ids=np.concatenate([part.customer_ids for part in parts]),
        row_cutoffs=np.concatenate([np.full(part.n_rows, part.cutoff, dtype=object) for part in parts]),
    )


def training_cutoffs(window: TrainingWindow, n_cutoffs: int, step_days: int) -> tuple[date, ...]:
    """Return ``n_cutoffs`` training cutoffs: train_cutoff and the ones ``step_days`` apart before it, oldest first.

    Each is earlier than train_cutoff, so its label window ends before the
    validation cutoff as train_cutoff's does (``check_window``). Raises
    DataError when a cutoff falls on or before the first sale day.
    """
    _check_cutoff_count(n_cutoffs, None)
    step_days = _check_positive_days(step_days, "cutoff_step_days")
    cutoffs = tuple(window.train_cutoff - timedelta(days=step_days * k) for k in reversed(range(n_cutoffs)))
    if cutoffs[0] <= window.first_sale_day:
        raise DataError(
            _(
                "The earliest of {count} training cutoffs {step} days apart is {cutoff}, on or before the first sale "
                "day {first}; use fewer cutoffs, a shorter step or a later train cutoff."
            ).format(count=n_cutoffs, step=step_days, cutoff=cutoffs[0], first=window.first_sale_day)
        )
    return cutoffs


def _check_cutoff_count(n_cutoffs: int, step_days: int | None) -> int | None:
    """Raise unless ``n_cutoffs`` is a positive whole number and ``step_days`` None or positive; return step_days."""
    if isinstance(n_cutoffs, bool) or not isinstance(n_cutoffs, (int, np.integer)) or n_cutoffs <= 0:
        raise DuckmktError(
            _("Invalid n_train_cutoffs {value!r}; give a whole number greater than 0.").format(value=n_cutoffs)
        )
    return None if step_days is None else _check_positive_days(step_days, "cutoff_step_days")


def _parse_date(value: date | str | None, setting: str) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError as error:
        raise DuckmktError(
            _("Invalid {setting} {value!r}; give a date as YYYY-MM-DD.").format(setting=setting, value=value)
        ) from error


def _check_positive_days(value: int, setting: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise DuckmktError(
            _("Invalid {setting} {value!r}; give a whole number of days greater than 0.").format(
                setting=setting, value=value
            )
        )
    return int(value)


@contextmanager
def cached_order_lines(con: duckdb.DuckDBPyConnection) -> Iterator[str]:
    """Copy the kept lines of ``mkt.stg_order_lines`` into a temporary table; yield its name, drop it on exit.

    The staging view cleans the raw lines again in every query that reads it,
    and its duplicate check is most of a feature pass. A training run reads
    features and labels at several cutoffs (five macro calls per cutoff), so
    it cleans the lines once here and passes the table to the macros as
    ``staged_lines``.
    """
    con.execute(
        f"""
        create or replace temp table {CACHED_LINES_TABLE} as
        select {", ".join(CACHED_LINE_COLUMNS)}
        from mkt.stg_order_lines
        where line_status in ('sale', 'cancellation', 'return')
        """
    )
    try:
        yield CACHED_LINES_TABLE
    finally:
        con.execute(f"drop table if exists temp.main.{CACHED_LINES_TABLE}")


# The macros that read order lines and take a staged_lines parameter.
STAGED_LINE_MACROS = ("customer_features_at", "customer_labels_at", "purchase_days_at", "int_orders_from")


def macros_take_staged_lines(con: duckdb.DuckDBPyConnection) -> bool:
    """Return whether this database's feature and label macros accept ``staged_lines`` (see ``sql_views.macros_take_parameter``)."""
    return sql_views.macros_take_parameter(con, STAGED_LINE_MACROS, "staged_lines")


def orders_relation(staged_lines: str | None = None) -> str:
    """Return the SQL of the orders to read: ``mkt.int_orders``, or the same orders built from ``staged_lines``."""
    if staged_lines is None:
        return "mkt.int_orders"
    return f"mkt.int_orders_from('{staged_lines}')"


def sale_day_range(con: duckdb.DuckDBPyConnection, staged_lines: str | None = None) -> tuple[date, date]:
    """Return the days of the first and the latest sale (orders of ``orders_relation(staged_lines)``)."""
    first, last = con.execute(
        f"select min(ordered_at)::date, max(ordered_at)::date from {orders_relation(staged_lines)}"
    ).fetchall()[0]
    if first is None:
        raise DataError(_("The database has no sales; load order lines with 'duckmkt load' first."))
    return first, last


def check_settings(
    *,
    horizon_days: int | None = None,
    churn_horizon_days: int | None = None,
    train_cutoff: date | str | None = None,
    validation_cutoff: date | str | None = None,
    n_train_cutoffs: int = 1,
    cutoff_step_days: int | None = None,
) -> tuple[int, int, date | None, date | None, list[str]]:
    """Check the settings that need no data; return them with the default horizons filled and parsed dates.

    The last item names the horizons that took their default. A training
    run calls this before it reads any data, so a wrong setting fails at once.
    """
    derived = []
    if horizon_days is None:
        horizon_days = DEFAULT_HORIZON_DAYS
        derived.append("horizon_days")
    if churn_horizon_days is None:
        churn_horizon_days = DEFAULT_CHURN_HORIZON_DAYS
        derived.append("churn_horizon_days")
    horizon_days = _check_positive_days(horizon_days, "horizon_days")
    churn_horizon_days = _check_positive_days(churn_horizon_days, "churn_horizon_days")
    if horizon_days > churn_horizon_days:
        # The label macro only reads orders up to the churn horizon, so a
        # longer purchase horizon would silently truncate the spend label.
        raise DuckmktError(
            _("horizon_days {horizon} is longer than churn_horizon_days {churn}; give a horizon of at most {churn} days.").format(
                horizon=horizon_days, churn=churn_horizon_days
            )
        )
    _check_cutoff_count(n_train_cutoffs, cutoff_step_days)
    validation_cutoff = _parse_date(validation_cutoff, "validation_cutoff")
    train_cutoff = _parse_date(train_cutoff, "train_cutoff")
    return horizon_days, churn_horizon_days, train_cutoff, validation_cutoff, derived


def resolve_window(
    con: duckdb.DuckDBPyConnection,
    *,
    horizon_days: int | None = None,
    churn_horizon_days: int | None = None,
    train_cutoff: date | str | None = None,
    validation_cutoff: date | str | None = None,
    staged_lines: str | None = None,
) -> TrainingWindow:
    """Fill unset cutoffs and horizons from the data and check the window.

    Defaults: horizon_days 60, churn_horizon_days 120, validation_cutoff =
    (day after the latest sale) - churn_horizon_days, train_cutoff =
    validation_cutoff - churn_horizon_days. Raises DataError when a cutoff
    lies outside the loaded sales or the two label windows overlap.
    """
    horizon_days, churn_horizon_days, train_cutoff, validation_cutoff, derived = check_settings(
        horizon_days=horizon_days,
        churn_horizon_days=churn_horizon_days,
        train_cutoff=train_cutoff,
        validation_cutoff=validation_cutoff,
    )

    first_sale_day, last_sale_day = sale_day_range(con, staged_lines)
    # A label window [cutoff, cutoff + churn_horizon_days) is fully observed
    # only when it ends on or before the day after the latest sale.
    data_end = last_sale_day + timedelta(days=1)
    horizon = timedelta(days=churn_horizon_days)

    if validation_cutoff is None:
        validation_cutoff = data_end - horizon
        derived.append("validation_cutoff")
    if train_cutoff is None:
        train_cutoff = validation_cutoff - horizon
        derived.append("train_cutoff")

    window = TrainingWindow(
        train_cutoff=train_cutoff,
        validation_cutoff=validation_cutoff,
        horizon_days=horizon_days,
        churn_horizon_days=churn_horizon_days,
        first_sale_day=first_sale_day,
        last_sale_day=last_sale_day,
        derived=tuple(derived),
    )
    check_window(window)
    return window


def check_window(window: TrainingWindow) -> None:
    """Raise DataError unless both cutoffs have history before them and fully observed labels after them."""
    horizon = timedelta(days=window.churn_horizon_days)
    latest_cutoff = window.last_sale_day + timedelta(days=1) - horizon

    # Any valid window needs history before the training cutoff and two
    # label windows after it, so a short history fails here with the fix,
    # before a cutoff check suggests a date that another check rejects.
    span_days = (window.last_sale_day + timedelta(days=1) - window.first_sale_day).days
    if span_days <= 2 * window.churn_horizon_days:
        shorter = (span_days - 1) // 3
        fix = (
            _("load a longer history, or pass shorter horizons, for example --churn-horizon-days {churn} --horizon-days {horizon}").format(
                churn=shorter, horizon=min(window.horizon_days, shorter)
            )
            if shorter >= 1
            else _("load a longer history")
        )
        raise DataError(
            _(
                "The sales cover {span} days ({first} to {last}), but training needs more than twice the churn horizon "
                "of {days} days: history before the training cutoff, then the training labels and the validation labels; {fix}."
            ).format(
                span=span_days, first=window.first_sale_day, last=window.last_sale_day, days=window.churn_horizon_days, fix=fix
            )
        )

    for setting, cutoff in (("train_cutoff", window.train_cutoff), ("validation_cutoff", window.validation_cutoff)):
        if cutoff <= window.first_sale_day:
            raise DataError(
                _(
                    "{setting} {cutoff} is on or before the first sale day {first}, so no customer has history; "
                    "choose a cutoff after {first}."
                ).format(setting=setting, cutoff=cutoff, first=window.first_sale_day)
            )
        if cutoff > latest_cutoff:
            raise DataError(
                _(
                    "{setting} {cutoff} plus the churn horizon of {days} days ends after the latest sale day {last}; "
                    "choose a cutoff on or before {latest} or a shorter churn horizon."
                ).format(
                    setting=setting,
                    cutoff=cutoff,
                    days=window.churn_horizon_days,
                    last=window.last_sale_day,
                    latest=latest_cutoff,
                )
            )

    # Training labels look churn_horizon_days ahead, so they must end before
    # the validation period starts or validation orders leak into training.
    latest_train_cutoff = window.validation_cutoff - horizon
    if window.train_cutoff > latest_train_cutoff:
        raise DataError(
            _(
                "train_cutoff {train} is less than the churn horizon of {days} days before validation_cutoff "
                "{validation}, so the training labels overlap the validation period; "
                "choose a train cutoff on or before {latest}."
            ).format(
                train=window.train_cutoff,
                days=window.churn_horizon_days,
                validation=window.validation_cutoff,
                latest=latest_train_cutoff,
            )
        )


def load_rows(
    con: duckdb.DuckDBPyConnection,
    cutoff: date,
    window: TrainingWindow,
    feature_names: tuple[str, ...] | None = None,
    staged_lines: str | None = None,
) -> LabeledRows:
    """Read the features and labels of every customer active before ``cutoff``.

    Feature columns follow ``feature_names`` (``duckmkt.features.FEATURE_NAMES``
    read at call time when None). NULL features become NaN in a float32 matrix.
    The macros read ``staged_lines`` (see ``cached_order_lines``) when given,
    else the staging view.
    """
    feature_names = tuple(features.FEATURE_NAMES) if feature_names is None else tuple(feature_names)
    params = {
        "cutoff": cutoff.isoformat(),
        "horizon_days": window.horizon_days,
        "churn_horizon_days": window.churn_horizon_days,
    }
    # Without a table the call leaves staged_lines out, so a database whose
    # macros lack that parameter (the one Spark training fills) still works.
    lines = ""
    if staged_lines is not None:
        lines = ", staged_lines := $staged_lines"
        params["staged_lines"] = staged_lines
    relation = con.sql(
        f"""
        select features.*, labels.purchased, labels.spend, labels.churned, days.n_purchase_days
        from mkt.customer_features_at($cutoff::date{lines}) as features
        inner join mkt.customer_labels_at($cutoff::date, $horizon_days, $churn_horizon_days{lines}) as labels
            using (customer_id)
        inner join mkt.purchase_days_at($cutoff::date, $horizon_days{lines}) as days
            using (customer_id)
        order by customer_id
        """,
        params=params,
    )
    frame = relation.pl()
    matrix = _feature_matrix(frame, feature_names)
    labels = {
        "purchased": frame["purchased"].cast(pl.Float32).to_numpy(),
        "spend": frame["spend"].cast(pl.Float32).to_numpy(),
        "churned": frame["churned"].cast(pl.Float32).to_numpy(),
        "n_purchases": frame["n_purchase_days"].cast(pl.Float32).to_numpy(),
    }
    logger.debug("Read %d rows at cutoff %s", frame.height, cutoff)
    return LabeledRows(
        cutoff=cutoff,
        feature_names=feature_names,
        matrix=matrix,
        labels=labels,
        customer_ids=frame["customer_id"].to_numpy(),
    )


def load_features(
    con: duckdb.DuckDBPyConnection,
    cutoff: date,
    feature_names: tuple[str, ...],
    staged_lines: str | None = None,
) -> np.ndarray:
    """Read the features of every customer active before ``cutoff``, without labels, as ``load_rows`` reads them."""
    params = {"cutoff": cutoff.isoformat()}
    lines = ""
    if staged_lines is not None:
        lines = ", staged_lines := $staged_lines"
        params["staged_lines"] = staged_lines
    frame = con.sql(f"select * from mkt.customer_features_at($cutoff::date{lines})", params=params).pl()
    logger.debug("Read %d feature rows at cutoff %s", frame.height, cutoff)
    return _feature_matrix(frame, feature_names)


def _feature_matrix(frame: pl.DataFrame, feature_names: tuple[str, ...]) -> np.ndarray:
    """Return the ``feature_names`` columns of ``frame`` as a C-ordered float32 matrix with NULL as NaN."""
    missing = [name for name in feature_names if name not in frame.columns]
    if missing:
        raise DataError(
            _(
                "The feature view mkt.customer_features_at has no column {columns}; "
                "add it to the SQL or remove it from duckmkt.features.FEATURES."
            ).format(columns=", ".join(missing))
        )
    matrix = (
        frame.select([pl.col(name).cast(pl.Float32).fill_null(float("nan")) for name in feature_names])
        .to_numpy()
        .astype(np.float32, copy=False)
    )
    return np.ascontiguousarray(matrix)


def check_rows(rows: LabeledRows, role: str) -> None:
    """Raise DataError when ``rows`` are too few or a binary label has one class."""
    if rows.n_rows < MIN_ROWS:
        raise DataError(
            _(
                "The {role} rows at cutoff {cutoff} number {count}, fewer than the {minimum} needed; "
                "load more order lines or choose a later cutoff."
            ).format(role=role, cutoff=rows.cutoff, count=rows.n_rows, minimum=MIN_ROWS)
        )
    for label in BINARY_LABELS:
        values = np.unique(rows.labels[label])
        if values.size < 2:
            raise DataError(
                _(
                    "The label {label} of the {role} rows at cutoff {cutoff} has the single value {value}; "
                    "a model needs both classes, so choose another cutoff or other horizons."
                ).format(label=label, role=role, cutoff=rows.cutoff, value=int(values[0]) if values.size else "none")
            )
