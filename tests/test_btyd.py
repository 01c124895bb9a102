"""BG/NBD and Gamma-Gamma on the real CDNOW data, checked against the published fit."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pytest

from duckmkt import btyd
from duckmkt.database import connect_database
from duckmkt.loading import load_files, read_mappings

CDNOW = Path(__file__).resolve().parents[2] / "shared" / "data" / "cdnow" / "CDNOW_master.txt"

# Fader, Hardie and Lee (2005), BG/NBD on the CDNOW calibration period
# 1997-01-01..1997-09-30, weeks as the time unit.
PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
CALIBRATION_END = date(1997, 10, 1)


@pytest.fixture(scope="module")
def cdnow_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("cdnow") / "cdnow.duckdb"
    con = connect_database(path)
    load_files(con, CDNOW, read_mappings(None, preset="cdnow"))
    con.close()
    return path


@pytest.fixture(scope="module")
def calibration(cdnow_db):
    con = duckdb.connect(str(cdnow_db), read_only=True)
    summary = btyd.summary_at(con, CALIBRATION_END)
    con.close()
    return summary, btyd.BetaGeometricNBD().fit(summary.frequency, summary.recency, summary.T)


def test_bgnbd_fit_near_published_cdnow_parameters(calibration):
    summary, model = calibration
    fitted = dict(zip(("r", "alpha", "a", "b"), model.params_))

    # The published fit used a 1/10 sample of the customers and kept the 80
    # zero-value rows that duckmkt drops, so the full data lands within 10 %.
    assert summary.n_customers == 23_500
    for name, published in PUBLISHED_BGNBD.items():
        assert fitted[name] == pytest.approx(published, rel=0.10), name


def test_bgnbd_fit_is_the_likelihood_maximum(calibration):
    summary, model = calibration
    published = np.array(list(PUBLISHED_BGNBD.values()))

    at_published = model.log_likelihood(published, summary.frequency, summary.recency, summary.T).sum()

    assert model.log_likelihood_ >= at_published
    # A small step in any direction lowers the likelihood.
    for index in range(4):
        moved = model.params_.copy()
        moved[index] *= 1.02
        assert model.log_likelihood(moved, summary.frequency, summary.recency, summary.T).sum() < model.log_likelihood_


def test_bgnbd_predictions_behave(calibration):
    summary, model = calibration
    weeks = 39.0

    expected = model.conditional_expected_purchases(weeks, summary.frequency, summary.recency, summary.T)
    probability = model.probability_of_purchase(weeks, summary.frequency, summary.recency, summary.T)
    alive = model.probability_alive(summary.frequency, summary.recency, summary.T)

    assert np.all(expected >= 0)
    assert np.all((probability >= 0) & (probability <= alive + 1e-12))
    # Without repeat purchases a customer is certainly alive in BG/NBD.
    assert np.all(alive[summary.frequency == 0] == 1.0)
    # Same frequency and T: a more recent last purchase means more purchases ahead.
    assert model.conditional_expected_purchases(weeks, 3, 30.0, 38.0) > model.conditional_expected_purchases(weeks, 3, 5.0, 38.0)


def test_gamma_gamma_shrinks_toward_population_mean(calibration):
    summary, _model = calibration
    model = btyd.GammaGamma().fit(summary.frequency, summary.monetary_value)
    population_mean = model.p_ * model.gamma_ / (model.q_ - 1)

    spend = model.conditional_expected_spend_per_purchase(np.array([1.0, 20.0, 0.0]), np.array([200.0, 200.0, 0.0]))

    assert model.q_ > 1
    # One purchase of 200 is shrunk more toward the mean than twenty are.
    assert population_mean < spend[0] < spend[1] < 200.0
    assert spend[2] == pytest.approx(population_mean)


def test_btyd_summary_reads_only_before_cutoff(cdnow_db):
    con = duckdb.connect(str(cdnow_db), read_only=True)
    summary = btyd.summary_at(con, CALIBRATION_END)
    direct = con.execute(
        """
        select count(distinct customer_id), count(distinct (customer_id, ordered_at::date))
        from mkt.int_orders where ordered_at < '1997-10-01'
        """
    ).fetchall()[0]
    con.close()

    assert summary.n_customers == direct[0]
    # frequency counts repeat purchase days: all purchase days minus one per customer.
    assert summary.frequency.sum() == direct[1] - direct[0]
    assert np.all(summary.recency <= summary.T)
    assert summary.T.max() == pytest.approx(39.0)
