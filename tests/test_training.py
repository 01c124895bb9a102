"""Training on a real subset of Online Retail: defaults, errors, metrics and baselines."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pytest

from duckmkt import features
from duckmkt.sql_views import sql_dir
from duckmkt.errors import DataError, DuckmktError
from duckmkt.training import CustomerModelTrainer, resolve_window, train
from duckmkt.training.trainer import DataProgress, EpochProgress
from duckmkt.training.baselines import LogisticRegressionIRLS, last_window_spend, last_window_totals
from duckmkt.training.dataset import CACHED_LINES_TABLE, cached_order_lines, load_rows
from duckmkt.training.metrics import log_loss, mean_absolute_error, roc_auc

pytestmark = pytest.mark.train


@pytest.fixture
def small_con(small_db):
    con = duckdb.connect(str(small_db), read_only=True)
    yield con
    con.close()


@pytest.fixture(scope="module")
def fitted_trainer(small_db):
    con = duckdb.connect(str(small_db), read_only=True)
    epochs = []
    try:
        trainer = CustomerModelTrainer(epochs=4, seed=0).fit(con, progress=epochs.append)
    finally:
        con.close()
    return trainer, epochs


def test_resolve_window_defaults_from_data(small_con):
    latest = small_con.execute("select max(ordered_at)::date from mkt.int_orders").fetchall()[0][0]
    day_after = latest + timedelta(days=1)

    window = resolve_window(small_con)

    assert window.horizon_days == 60
    assert window.churn_horizon_days == 120
    assert window.validation_cutoff == day_after - timedelta(days=120)
    assert window.train_cutoff == window.validation_cutoff - timedelta(days=120)
    assert set(window.derived) == {"horizon_days", "churn_horizon_days", "train_cutoff", "validation_cutoff"}


def test_resolve_window_follows_churn_horizon(small_con):
    window = resolve_window(small_con, horizon_days=30, churn_horizon_days=90)

    assert window.validation_cutoff == window.last_sale_day + timedelta(days=1) - timedelta(days=90)
    assert window.train_cutoff == window.validation_cutoff - timedelta(days=90)
    assert set(window.derived) == {"train_cutoff", "validation_cutoff"}


def test_resolve_window_given_values_kept(small_con):
    window = resolve_window(small_con, train_cutoff="2011-03-01", validation_cutoff=date(2011, 7, 1))

    assert window.train_cutoff == date(2011, 3, 1)
    assert window.validation_cutoff == date(2011, 7, 1)
    assert "train_cutoff" not in window.derived
    assert "validation_cutoff" not in window.derived


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"train_cutoff": "2010-11-01"}, "on or before the first sale day"),
        ({"validation_cutoff": "2011-11-01"}, "ends after the latest sale day"),
        ({"train_cutoff": "2011-06-01", "validation_cutoff": "2011-08-01"}, "overlap the validation period"),
    ],
)
def test_resolve_window_cutoff_outside_data(small_con, settings, message):
    with pytest.raises(DataError, match=message) as raised:
        resolve_window(small_con, **settings)

    given_cutoff = next(iter(settings.values()))
    assert given_cutoff in str(raised.value)


def test_resolve_window_short_history_names_shorter_horizons(small_con):
    # The small subset covers about a year, so a churn horizon of 200 days leaves no room for two label windows.
    with pytest.raises(DataError, match="but training needs more than twice the churn horizon of 200 days") as raised:
        resolve_window(small_con, horizon_days=60, churn_horizon_days=200)

    churn = int(re.search(r"--churn-horizon-days (\d+)", str(raised.value)).group(1))
    window = resolve_window(small_con, horizon_days=min(60, churn), churn_horizon_days=churn)
    assert window.train_cutoff > window.first_sale_day


@pytest.mark.parametrize(
    "settings",
    [{"horizon_days": 0}, {"churn_horizon_days": -5}, {"horizon_days": 200}, {"train_cutoff": "April 2011"}],
)
def test_resolve_window_invalid_settings(small_con, settings):
    with pytest.raises(DuckmktError):
        resolve_window(small_con, **settings)


def test_train_one_class_raises(small_db_copy, tmp_path):
    con = duckdb.connect(str(small_db_copy))
    window = resolve_window(con)
    # Remove every order in the training label window, so purchased is 0
    # and churned is 1 for every training row.
    con.execute(
        """
        delete from raw.order_lines
        where (load_id, source_line) in (
            select load_id, source_line from mkt.stg_order_lines
            where ordered_at >= ?::timestamp and ordered_at < ?::timestamp
        )
        """,
        [window.train_cutoff.isoformat(), window.validation_cutoff.isoformat()],
    ).fetchall()

    with pytest.raises(DataError, match="single value") as raised:
        train(con, models_dir=tmp_path, epochs=1, train_cutoff=window.train_cutoff, validation_cutoff=window.validation_cutoff)

    assert "purchased" in str(raised.value)
    assert not (tmp_path / "customer").exists()
    con.close()


def test_train_too_few_customers_raises(small_db_copy, tmp_path):
    con = duckdb.connect(str(small_db_copy))
    con.execute(
        """
        delete from raw.order_lines
        where customer_id not in (
            select distinct customer_id from raw.order_lines where customer_id is not null order by customer_id limit 30
        )
        """
    ).fetchall()

    with pytest.raises(DataError, match="fewer than the 50 needed"):
        train(con, models_dir=tmp_path, epochs=1)
    con.close()


def test_train_empty_database_raises(tmp_path):
    from duckmkt.database import connect_database

    con = connect_database(tmp_path / "empty.duckdb")
    with pytest.raises(DataError, match="no sales"):
        train(con, models_dir=tmp_path / "models", epochs=1)
    con.close()


def test_load_rows_feature_order_and_nan(small_con):
    window = resolve_window(small_con)
    rows = load_rows(small_con, window.train_cutoff, window)

    assert rows.feature_names == features.FEATURE_NAMES
    assert rows.matrix.dtype == np.float32
    assert rows.matrix.shape == (rows.n_rows, len(features.FEATURE_NAMES))
    # Customers with one order have no mean gap between orders: NULL -> NaN.
    gap = rows.matrix[:, features.FEATURE_NAMES.index("mean_days_between_orders")]
    frequency = rows.matrix[:, features.FEATURE_NAMES.index("frequency")]
    assert np.all(np.isnan(gap[frequency == 1]))
    assert np.all(np.isfinite(gap[frequency > 1]))


def test_trainer_fit_learned_state(fitted_trainer):
    trainer, _epochs = fitted_trainer

    assert trainer.n_epochs_ <= 4
    assert trainer.feature_names_ == features.FEATURE_NAMES
    assert set(trainer.metrics_) == set(trainer.baselines_)
    for value in list(trainer.metrics_.values()) + list(trainer.baselines_.values()):
        assert np.isfinite(value)
    for head, values in trainer.validation_predictions_.items():
        assert values.shape == (trainer.validation_rows_.n_rows, 1), head
    assert np.all(trainer.validation_predictions_["expected_spend"] >= 0)


def test_trainer_progress_once_per_epoch(fitted_trainer):
    trainer, events = fitted_trainer
    epochs = [event for event in events if isinstance(event, EpochProgress)]

    assert [event.epoch for event in epochs] == list(range(1, trainer.n_epochs_ + 1))
    assert all(event.epochs == 4 for event in epochs)
    assert all(np.isfinite(event.loss) and np.isfinite(event.val_loss) for event in epochs)
    assert "Epoch 1/4" in epochs[0].message()


def test_trainer_reports_data_steps_before_epochs(fitted_trainer):
    trainer, events = fitted_trainer
    steps = [event for event in events if isinstance(event, DataProgress)]

    # One step for the cleaning, then one per cutoff, all before the first epoch.
    assert len(steps) == 1 + len(trainer.train_cutoffs_) + 1
    assert events[: len(steps)] == steps
    assert steps[0].cutoff is None
    assert steps[0].rows > trainer.train_rows_.n_rows
    assert [step.cutoff for step in steps[1:]] == [*trainer.train_cutoffs_, trainer.window_.validation_cutoff]
    assert steps[-1].rows == trainer.validation_rows_.n_rows
    assert "Cleaned the order lines" in steps[0].message()
    assert steps[1].message().startswith(f"Read the training rows at cutoff {trainer.train_cutoffs_[0]}")
    assert steps[-1].message().startswith(f"Read the validation rows at cutoff {trainer.window_.validation_cutoff}")


def test_cached_order_lines_give_the_same_rows(small_con):
    window = resolve_window(small_con)
    expected = load_rows(small_con, window.validation_cutoff, window)

    with cached_order_lines(small_con) as staged_lines:
        cached_window = resolve_window(small_con, staged_lines=staged_lines)
        rows = load_rows(small_con, window.validation_cutoff, window, staged_lines=staged_lines)
        cached_spend = last_window_totals(
            small_con, window.validation_cutoff, rows.customer_ids, window.horizon_days, staged_lines
        )

    assert cached_window == window
    np.testing.assert_array_equal(rows.customer_ids, expected.customer_ids)
    np.testing.assert_array_equal(rows.matrix, expected.matrix)
    for label, values in expected.labels.items():
        np.testing.assert_array_equal(rows.labels[label], values, err_msg=label)
    spend = last_window_totals(small_con, window.validation_cutoff, rows.customer_ids, window.horizon_days)
    np.testing.assert_array_equal(cached_spend[0], spend[0])
    np.testing.assert_array_equal(cached_spend[1], spend[1])
    # The copy is dropped on exit, also from a read-only connection.
    temporary = small_con.execute("select table_name from duckdb_tables() where temporary").fetchall()
    assert (CACHED_LINES_TABLE,) not in temporary


def test_trainer_reads_old_macros_without_cache(small_db, tmp_path, caplog):
    # A database written by an older duckmkt: purchase_days_at without staged_lines.
    old_db = tmp_path / "old.duckdb"
    old_db.write_bytes(small_db.read_bytes())
    con = duckdb.connect(str(old_db))
    macro = (Path(sql_dir()) / "labels" / "purchase_days_at.sql").read_text()
    macro = macro.replace(", staged_lines := 'mkt.stg_order_lines'", "").replace("mkt.int_orders_from(staged_lines)", "mkt.int_orders")
    con.execute(macro)
    con.close()

    con = duckdb.connect(str(old_db), read_only=True)
    events = []
    try:
        with caplog.at_level("WARNING", logger="duckmkt.training.trainer"):
            trainer = CustomerModelTrainer(epochs=1, seed=0).fit(con, progress=events.append)
    finally:
        con.close()

    assert "predate cached order lines" in caplog.text
    steps = [event for event in events if isinstance(event, DataProgress)]
    assert [step.cutoff for step in steps] == [*trainer.train_cutoffs_, trainer.window_.validation_cutoff]
    assert trainer.validation_rows_.n_rows >= 50


def test_trainer_same_seed_same_predictions(small_db, fitted_trainer):
    trainer, _epochs = fitted_trainer
    con = duckdb.connect(str(small_db), read_only=True)
    again = CustomerModelTrainer(epochs=4, seed=0).fit(con)
    con.close()

    for head, values in trainer.validation_predictions_.items():
        np.testing.assert_allclose(again.validation_predictions_[head], values, rtol=1e-4, atol=1e-5, err_msg=head)


def test_roc_auc_known_values():
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    assert roc_auc(np.array([0, 1]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    assert roc_auc(np.array([1, 0]), np.array([0.9, 0.1])) == pytest.approx(1.0)
    assert np.isnan(roc_auc(np.array([1, 1]), np.array([0.2, 0.3])))


def test_roc_auc_ties_match_pair_count():
    generator = np.random.default_rng(0)
    labels = generator.integers(0, 2, 300)
    # Scores rounded to one decimal: many ties.
    scores = np.round(generator.random(300), 1)

    positives, negatives = scores[labels == 1], scores[labels == 0]
    wins = (positives[:, None] > negatives[None, :]).sum() + 0.5 * (positives[:, None] == negatives[None, :]).sum()
    expected = wins / (positives.size * negatives.size)

    assert roc_auc(labels, scores) == pytest.approx(expected, abs=1e-12)


def test_log_loss_and_mae_known_values():
    assert log_loss(np.array([1, 0]), np.array([0.8, 0.4])) == pytest.approx(-(np.log(0.8) + np.log(0.6)) / 2)
    assert np.isfinite(log_loss(np.array([1]), np.array([0.0])))
    assert mean_absolute_error(np.array([1.0, 5.0]), np.array([2.0, 2.0])) == pytest.approx(2.0)


def test_logistic_regression_irls_optimum():
    generator = np.random.default_rng(1)
    x = generator.normal(size=(2000, 2))
    true_weights = np.array([1.5, -2.0])
    y = (generator.random(2000) < 1 / (1 + np.exp(-(x @ true_weights + 0.3)))).astype(float)

    model = LogisticRegressionIRLS(l2=0.0).fit(x, y)

    np.testing.assert_allclose(model.coef_, true_weights, atol=0.25)
    # At the optimum the gradient of the log likelihood is zero.
    residual = model.predict_proba(x) - y
    np.testing.assert_allclose(x.T @ residual, 0.0, atol=1e-6)
    assert abs(residual.sum()) < 1e-6


def test_last_window_spend_matches_sql(small_con):
    window = resolve_window(small_con)
    rows = load_rows(small_con, window.validation_cutoff, window)

    spend = last_window_spend(small_con, rows, window.horizon_days)

    start = window.validation_cutoff - timedelta(days=window.horizon_days)
    total = small_con.execute(
        "select coalesce(sum(order_value), 0) from mkt.int_orders where ordered_at >= ?::timestamp and ordered_at < ?::timestamp",
        [start.isoformat(), window.validation_cutoff.isoformat()],
    ).fetchall()[0][0]
    assert spend.shape == (rows.n_rows,)
    assert spend.sum() == pytest.approx(float(total), rel=1e-9)
    assert np.all(spend >= 0)


def test_train_report_metrics_beside_baselines(small_db, tmp_path):
    con = duckdb.connect(str(small_db), read_only=True)
    result = train(con, models_dir=tmp_path, epochs=2)
    con.close()

    assert set(result.derived_settings) == {"horizon_days", "churn_horizon_days", "train_cutoff", "validation_cutoff"}
    assert result.settings["horizon_days"] == 60
    report = json.loads((result.model_dir / "report.json").read_text())
    assert set(report["metrics"]) == set(result.metrics)
    for name, entry in report["metrics"].items():
        assert entry["model"] == pytest.approx(result.metrics[name])
        assert entry["baseline"] == pytest.approx(result.baselines[name])
    assert [row[0] for row in result.comparison()] == list(report["metrics"])


def test_trainer_search_same_seed_same_model(small_db):
    con = duckdb.connect(str(small_db), read_only=True)
    settings = {"epochs": 3, "seed": 3, "time_budget_seconds": 3600, "max_trials": 2, "n_train_cutoffs": 2}
    first = CustomerModelTrainer(**settings).fit(con)
    second = CustomerModelTrainer(**settings).fit(con)
    con.close()

    assert len(first.trials_) == 2
    assert first.params_ == second.params_
    assert first.calibration_ == second.calibration_
    for head, values in first.validation_predictions_.items():
        np.testing.assert_array_equal(second.validation_predictions_[head], values, err_msg=head)


def test_trainer_calibration_and_class_weights(fitted_trainer):
    trainer, _epochs = fitted_trainer

    assert set(trainer.calibration_) == {"purchase_prob", "churn_risk"}
    assert set(trainer.positive_weights_) == {"purchase_prob", "churn_risk"}
    purchased = trainer.train_rows_.labels["purchased"]
    assert trainer.positive_weights_["purchase_prob"] == pytest.approx((purchased.size - purchased.sum()) / purchased.sum())
    report = trainer.calibration_report_["purchase_prob"]
    assert sum(row["n_rows"] for row in report["reliability"]) == trainer.validation_rows_.n_rows
    assert report["ece"] == pytest.approx(trainer.metrics_["purchase_ece"])


def test_platt_scaling_lowers_calibration_error():
    from duckmkt.training.calibration import apply_platt, fit_platt
    from duckmkt.training.metrics import expected_calibration_error

    generator = np.random.default_rng(0)
    truth = generator.random(5000)
    labels = (generator.random(5000) < truth).astype(float)
    # Overconfident scores: pushed toward 0 and 1.
    scores = 1 / (1 + np.exp(-3 * np.log(truth / (1 - truth))))

    slope, intercept = fit_platt(scores, labels)

    assert slope == pytest.approx(1 / 3, abs=0.05)
    assert expected_calibration_error(labels, apply_platt(scores, slope, intercept)) < expected_calibration_error(labels, scores) / 2


def test_training_cutoffs_before_first_sale_raises(small_con):
    from duckmkt.training.dataset import training_cutoffs

    window = resolve_window(small_con)

    with pytest.raises(DataError, match="first sale"):
        training_cutoffs(window, 50, 30)
    with pytest.raises(DuckmktError, match="n_train_cutoffs"):
        training_cutoffs(window, 0, 30)


def test_trainer_invalid_class_weight_raises(small_con):
    with pytest.raises(DuckmktError, match="class_weight"):
        CustomerModelTrainer(class_weight="auto", epochs=1).fit(small_con)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"horizon_days": 90, "churn_horizon_days": 60}, "longer than churn_horizon_days"),
        ({"train_cutoff": "2011-13-01"}, "train_cutoff"),
        ({"n_train_cutoffs": 0}, "n_train_cutoffs"),
        ({"n_train_cutoffs": 2, "cutoff_step_days": -5}, "cutoff_step_days"),
    ],
)
def test_trainer_bad_setting_fails_before_reading_data(small_con, settings, message):
    events = []

    with pytest.raises(DuckmktError, match=message):
        CustomerModelTrainer(epochs=1, **settings).fit(small_con, progress=events.append)

    # No data step ran, so the order lines were not cleaned for nothing.
    assert events == []
    temporary = small_con.execute("select table_name from duckdb_tables() where temporary").fetchall()
    assert (CACHED_LINES_TABLE,) not in temporary
