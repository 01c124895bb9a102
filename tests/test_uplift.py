"""Uplift modeling on a simulated campaign over the real Online Retail customers, with a known effect per segment."""

from __future__ import annotations

import shutil

import duckdb
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from duckmkt import uplift
from duckmkt.cli import activate_language
from duckmkt.commands import actions
from duckmkt.errors import DataError

CUTOFF = "2011-09-01"


@pytest.fixture(scope="module")
def campaign_db(tmp_path_factory, online_retail_db):
    """A copy of the full Online Retail database with the default simulated campaign."""
    path = tmp_path_factory.mktemp("uplift") / "campaign.duckdb"
    shutil.copy(online_retail_db, path)
    con = duckdb.connect(str(path))
    simulation = uplift.simulate_campaign(con, cutoff=CUTOFF, seed=0)
    rows = uplift.read_campaign(con, simulation.campaign_id)
    con.close()
    return path, simulation, rows


def test_simulate_campaign_writes_interactions(campaign_db):
    path, simulation, rows = campaign_db
    con = duckdb.connect(str(path), read_only=True)
    n_rows, n_treated = con.execute(
        "select count(*), count(*) filter (where treatment) from mkt.campaign_responses where campaign_id = 'simulated'"
    ).fetchall()[0]
    con.close()

    assert n_rows == simulation.n_customers == len(rows.customer_ids)
    assert 0.45 < n_treated / n_rows < 0.55
    assert str(rows.cutoff) == CUTOFF


def test_simulated_effect_matches_chosen_effect(campaign_db):
    _path, simulation, rows = campaign_db
    segments = np.array([simulation.segments[customer] for customer in rows.customer_ids])

    for segment, effect in simulation.effects.items():
        members = segments == segment
        treated, responded = rows.treatment[members], rows.responded[members]
        observed = responded[treated].mean() - responded[~treated].mean()
        # Two-arm difference of a few hundred customers: about 0.03 to 0.05 of noise.
        assert observed == pytest.approx(effect, abs=0.08), segment


def test_uplift_recovers_segment_effects(campaign_db):
    _path, simulation, rows = campaign_db
    model = uplift.TLearnerUplift().fit(rows.features, rows.treatment, rows.responded)
    predicted = model.predict_uplift(rows.features)
    segments = np.array([simulation.segments[customer] for customer in rows.customer_ids])
    by_segment = {segment: float(predicted[segments == segment].mean()) for segment in simulation.effects}

    for segment, effect in simulation.effects.items():
        assert by_segment[segment] == pytest.approx(effect, abs=0.06), segment
    assert max(by_segment, key=by_segment.get) == "lapsing"
    assert min(by_segment, key=by_segment.get) == "active_loyal"


def test_uplift_ranking_beats_response_and_random(campaign_db):
    _path, _simulation, rows = campaign_db
    _model, evaluation, test = uplift.evaluate_campaign(rows, seed=0)
    methods = evaluation.methods

    assert evaluation.n_customers == int(test.sum())
    assert methods["uplift"]["qini"] > methods["response"]["qini"]
    assert methods["uplift"]["qini"] > methods["random"]["qini"]
    for top in ("uplift_at_10", "uplift_at_30"):
        assert methods["uplift"][top] > methods["response"][top], top
        assert methods["uplift"][top] > methods["random"][top], top


def test_qini_coefficient_sign():
    treatment = np.array([True, False] * 50)
    # Only treated customers with a high score respond.
    scores = np.linspace(1, 0, 100)
    responded = treatment & (scores > 0.5)

    assert uplift.qini_coefficient(scores, treatment, responded) > 0
    assert uplift.qini_coefficient(-scores, treatment, responded) < 0


def test_uplift_at_known_values():
    scores = np.array([4.0, 3.0, 2.0, 1.0])
    treatment = np.array([True, False, True, False])
    responded = np.array([True, False, False, True])

    assert uplift.uplift_at(scores, treatment, responded, 0.5) == pytest.approx(1.0)
    assert uplift.uplift_at(scores, treatment, responded, 1.0) == pytest.approx(0.0)


def test_read_campaign_unknown_campaign(campaign_db):
    path, _simulation, _rows = campaign_db
    con = duckdb.connect(str(path), read_only=True)
    try:
        with pytest.raises(DataError, match="treatment"):
            uplift.read_campaign(con, "no_such_campaign")
    finally:
        con.close()


def test_uplift_command_writes_customer_uplift(campaign_db, tmp_path):
    path, _simulation, _rows = campaign_db
    private = tmp_path / "campaign.duckdb"
    shutil.copy(path, private)
    activate_language("en")
    app = typer.Typer()
    actions.register(app)
    result = CliRunner().invoke(app, ["uplift", str(private), "--campaign", "simulated", "--action", "personalized_offer"])
    con = duckdb.connect(str(private), read_only=True)
    n_rows, n_customers, actions_written = con.execute(
        """
        select count(*), (select count(*) from mkt.customer_features), list(distinct action)
        from mkt.customer_uplift
        """
    ).fetchall()[0]
    con.close()

    assert result.exit_code == 0, result.output
    assert "Qini" in result.output
    assert n_rows == n_customers
    assert actions_written == ["personalized_offer"]
