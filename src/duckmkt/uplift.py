"""Uplift modeling: who buys because they were contacted, not who buys anyway.

A campaign with a control group (``mkt.campaign_responses``: one row per
customer with ``treatment`` and ``responded``) trains one response model per
arm (a T-learner): P(respond | features, contacted) and P(respond |
features, control). A customer's ``uplift`` is the difference. Each arm's
model is an L2-regularized logistic regression on the customer features as
of the campaign start (log-scaled, standardized). One-hot quantile bins of
recency, frequency and monetary value let the difference of the two arms
follow a segment effect that is not monotone in one feature.

Evaluation on held-out customers:

* Qini curve: customers sorted by score, at each prefix the incremental
  responders ``R_T - R_C * N_T / N_C`` (R responders and N customers of each
  arm in the prefix).
* Qini coefficient: area between that curve and the straight line of random
  targeting, with the x axis as the targeted share (0 to 1) and the y axis
  divided by the number of held-out customers. 0 is no better than random.
* Uplift at the top 10 % and 30 %: treated minus control response rate
  among the customers ranked highest.

``simulate_campaign`` builds a test campaign from real customers with a
treatment effect chosen by segment, so the method can be checked against a
known answer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

import duckdb
import numpy as np
from scipy import optimize

from duckmkt.errors import DataError
from duckmkt.features import FEATURES, FEATURE_NAMES
from duckmkt.i18n import _

logger = logging.getLogger(__name__)

TOP_FRACTIONS = (0.1, 0.3)
# Features binned at their quantiles so the arms' models can bend.
BINNED_FEATURES = ("recency_days", "frequency", "monetary_value")
N_BINS = 5
MIN_ARM_SIZE = 50

# Simulated treatment effect on the purchase probability, by segment.
SIMULATED_EFFECTS = {
    "active_loyal": -0.05,
    "active_new": 0.05,
    "lapsing": 0.25,
    "lapsed": 0.10,
}


def simulated_segment(recency_days: np.ndarray, frequency: np.ndarray) -> np.ndarray:
    """Return the segment of ``SIMULATED_EFFECTS`` of each customer.

    * active_loyal: bought in the last 60 days with 5 or more orders. They
      would buy anyway, and a contact slightly annoys them.
    * active_new: bought in the last 60 days with fewer orders.
    * lapsing: last order 60 to 180 days ago.
    * lapsed: last order longer ago.
    """
    return np.select(
        [(recency_days <= 60) & (frequency >= 5), recency_days <= 60, recency_days <= 180],
        ["active_loyal", "active_new", "lapsing"],
        default="lapsed",
    )


@dataclass
class CampaignRows:
    """Features, treatment and response of each customer of one campaign."""

    customer_ids: list[str]
    features: np.ndarray
    treatment: np.ndarray
    responded: np.ndarray
    cutoff: date


def read_features(con: duckdb.DuckDBPyConnection, cutoff: date | str) -> tuple[list[str], np.ndarray]:
    """Return the customer ids and the float64 feature matrix (NaN for NULL) of ``mkt.customer_features_at``."""
    columns = ", ".join(f"{name}::double" for name in FEATURE_NAMES)
    rows = con.execute(
        f"select customer_id, {columns} from mkt.customer_features_at($cutoff::date) order by customer_id", {"cutoff": str(cutoff)}
    ).fetchall()
    ids = [row[0] for row in rows]
    matrix = np.array([[np.nan if value is None else value for value in row[1:]] for row in rows], dtype=np.float64)
    return ids, matrix.reshape(len(ids), len(FEATURE_NAMES))


def read_campaign(con: duckdb.DuckDBPyConnection, campaign_id: str) -> CampaignRows:
    """Return the rows of ``campaign_id`` with features as of the day the campaign started."""
    rows = con.execute(
        "select customer_id, treatment, responded, contacted_at from mkt.campaign_responses where campaign_id = ? order by customer_id",
        [campaign_id],
    ).fetchall()
    if not rows:
        raise DataError(
            _("Campaign {campaign} has no interactions with a treatment flag; load interactions with a treatment column (true for contacted, false for control).").format(
                campaign=campaign_id
            )
        )
    cutoff = min(row[3] for row in rows).date()
    ids, matrix = read_features(con, cutoff)
    position = {customer_id: index for index, customer_id in enumerate(ids)}
    known = [row for row in rows if row[0] in position]
    if len(known) < len(rows):
        logger.warning(_("%d of %d campaign customers have no order before %s and are left out"), len(rows) - len(known), len(rows), cutoff)
    return CampaignRows(
        customer_ids=[row[0] for row in known],
        features=matrix[[position[row[0]] for row in known]],
        treatment=np.array([bool(row[1]) for row in known]),
        responded=np.array([bool(row[2]) for row in known]),
        cutoff=cutoff,
    )


class _Design:
    """Turn raw features into the model matrix: log1p, median imputation, scaling and quantile bins."""

    def fit(self, features: np.ndarray) -> _Design:
        logged = self._log(features)
        # Columns with no value at all (browsing not loaded) get median 0.
        self.median_ = np.array([np.median(column[~np.isnan(column)]) if (~np.isnan(column)).any() else 0.0 for column in logged.T])
        filled = np.where(np.isnan(logged), self.median_, logged)
        self.mean_ = filled.mean(axis=0)
        self.std_ = filled.std(axis=0)
        self.std_[self.std_ == 0] = 1.0
        self.edges_ = {
            name: np.unique(np.nanquantile(features[:, FEATURE_NAMES.index(name)], np.linspace(0, 1, N_BINS + 1)[1:-1]))
            for name in BINNED_FEATURES
        }
        return self

    @staticmethod
    def _log(features: np.ndarray) -> np.ndarray:
        logged = features.copy()
        for column, feature in enumerate(FEATURES):
            if feature.log_transform:
                logged[:, column] = np.log1p(np.clip(logged[:, column], 0, None))
        logged[~np.isfinite(logged)] = np.nan
        return logged

    def transform(self, features: np.ndarray) -> np.ndarray:
        logged = self._log(features)
        filled = np.where(np.isnan(logged), self.median_, logged)
        parts = [(filled - self.mean_) / self.std_]
        for name, edges in self.edges_.items():
            # NaN sorts above every edge, so a missing value lands in the top bin.
            bins = np.digitize(features[:, FEATURE_NAMES.index(name)], edges)
            parts.append(np.eye(len(edges) + 1)[bins])
        return np.hstack(parts)


def _fit_logistic(x: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """Return the weights (intercept last) of an L2-regularized logistic regression."""
    design = np.hstack([x, np.ones((len(x), 1))])
    penalty = np.r_[np.full(x.shape[1], l2), 0.0]

    def loss(weights):
        logits = design @ weights
        value = np.sum(np.logaddexp(0, logits) - y * logits) / len(y) + 0.5 * np.sum(penalty * weights**2)
        gradient = design.T @ (1 / (1 + np.exp(-logits)) - y) / len(y) + penalty * weights
        return value, gradient

    result = optimize.minimize(loss, np.zeros(design.shape[1]), jac=True, method="L-BFGS-B")
    return result.x


def _predict_logistic(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-(np.hstack([x, np.ones((len(x), 1))]) @ weights)))


class TLearnerUplift:
    """Uplift as the difference of two response models, one per arm.

    Parameters
    ----------
    l2 : float
        L2 penalty on the logistic regression weights (intercept excluded).
    """

    def __init__(self, *, l2: float = 1e-3):
        self.l2 = l2

    def fit(self, features: np.ndarray, treatment: np.ndarray, responded: np.ndarray) -> TLearnerUplift:
        """Fit one response model on the treated rows and one on the control rows."""
        n_treated, n_control = int(treatment.sum()), int((~treatment).sum())
        if min(n_treated, n_control) < MIN_ARM_SIZE:
            raise DataError(
                _("The campaign has {treated} treated and {control} control customers; each arm needs at least {minimum}.").format(
                    treated=n_treated, control=n_control, minimum=MIN_ARM_SIZE
                )
            )
        self.design_ = _Design().fit(features)
        x = self.design_.transform(features)
        self.treated_weights_ = _fit_logistic(x[treatment], responded[treatment].astype(np.float64), self.l2)
        self.control_weights_ = _fit_logistic(x[~treatment], responded[~treatment].astype(np.float64), self.l2)
        return self

    def predict_arms(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return P(respond | contacted) and P(respond | control) per row."""
        x = self.design_.transform(features)
        return _predict_logistic(x, self.treated_weights_), _predict_logistic(x, self.control_weights_)

    def predict_uplift(self, features: np.ndarray) -> np.ndarray:
        treated, control = self.predict_arms(features)
        return treated - control


# --- Evaluation -------------------------------------------------------------


def qini_curve(scores: np.ndarray, treatment: np.ndarray, responded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (targeted share, incremental responders / N) after each customer, highest score first."""
    order = np.argsort(-scores, kind="stable")
    treated = treatment[order]
    response = responded[order].astype(np.float64)
    n_treated = np.cumsum(treated)
    n_control = np.cumsum(~treated)
    responders_treated = np.cumsum(response * treated)
    responders_control = np.cumsum(response * ~treated)
    ratio = np.divide(n_treated, n_control, out=np.zeros(len(order)), where=n_control > 0)
    incremental = responders_treated - responders_control * ratio
    shares = np.arange(1, len(order) + 1) / len(order)
    return np.r_[0.0, shares], np.r_[0.0, incremental / len(order)]


def qini_coefficient(scores: np.ndarray, treatment: np.ndarray, responded: np.ndarray) -> float:
    """Return the area between the Qini curve and the random-targeting line (see the module docstring)."""
    shares, incremental = qini_curve(scores, treatment, responded)
    random_line = shares * incremental[-1]
    return float(np.trapezoid(incremental - random_line, shares))


def uplift_at(scores: np.ndarray, treatment: np.ndarray, responded: np.ndarray, fraction: float) -> float:
    """Return the treated minus control response rate among the top ``fraction`` by score."""
    order = np.argsort(-scores, kind="stable")[: max(1, int(round(fraction * len(scores))))]
    treated, response = treatment[order], responded[order]
    if treated.all() or not treated.any():
        return float("nan")
    return float(response[treated].mean() - response[~treated].mean())


@dataclass
class UpliftEvaluation:
    """Qini coefficient and uplift at the top shares for each way of ranking customers."""

    n_customers: int
    # Method -> {"qini": ..., "uplift_at_10": ..., "uplift_at_30": ...}
    methods: dict[str, dict[str, float]] = field(default_factory=dict)


def evaluate_rankings(
    rankings: dict[str, np.ndarray], treatment: np.ndarray, responded: np.ndarray
) -> UpliftEvaluation:
    """Evaluate every ranking in ``rankings`` (method -> score per customer) on the same customers."""
    evaluation = UpliftEvaluation(n_customers=len(treatment))
    for method, scores in rankings.items():
        evaluation.methods[method] = {
            "qini": qini_coefficient(scores, treatment, responded),
            **{f"uplift_at_{round(fraction * 100)}": uplift_at(scores, treatment, responded, fraction) for fraction in TOP_FRACTIONS},
        }
    return evaluation


def evaluate_campaign(rows: CampaignRows, *, seed: int = 0, test_share: float = 0.5) -> tuple[TLearnerUplift, UpliftEvaluation, np.ndarray]:
    """Fit on a random part of the campaign and evaluate on the rest.

    Compares ranking by modeled uplift with random ranking and with ranking
    by the contacted arm's response probability. Returns the model, the
    evaluation and the boolean test mask.
    """
    # A stream of its own, so the split never repeats the draws of a
    # simulation made with the same seed.
    rng = np.random.default_rng([seed, 1])
    test = rng.random(len(rows.customer_ids)) < test_share
    model = TLearnerUplift().fit(rows.features[~test], rows.treatment[~test], rows.responded[~test])
    treated_probability, control_probability = model.predict_arms(rows.features[test])
    rankings = {
        "uplift": treated_probability - control_probability,
        "response": treated_probability,
        "random": rng.random(int(test.sum())),
    }
    return model, evaluate_rankings(rankings, rows.treatment[test], rows.responded[test]), test


# --- Simulation -------------------------------------------------------------


@dataclass
class SimulatedCampaign:
    """A campaign written into raw.interactions and the effect it was built with."""

    campaign_id: str
    cutoff: date
    n_customers: int
    segments: dict[str, str]
    effects: dict[str, float]


def simulate_campaign(
    con: duckdb.DuckDBPyConnection,
    *,
    cutoff: date | str,
    horizon_days: int = 60,
    effects: dict[str, float] | None = None,
    campaign_id: str = "simulated",
    treated_share: float = 0.5,
    seed: int = 0,
) -> SimulatedCampaign:
    """Write a randomized campaign on the real customers at ``cutoff`` into ``raw.interactions``.

    Each customer with an order before ``cutoff`` is contacted with
    probability ``treated_share``. The control outcome is real: whether the
    customer bought in the ``horizon_days`` after the cutoff. A contacted
    customer's outcome is the real one changed at random so that the
    segment's purchase rate moves by the segment's effect: with effect e > 0
    and control rate p a non-buyer becomes a buyer with probability
    e / (1 - p); with e < 0 a buyer becomes a non-buyer with probability
    -e / p.
    """
    effects = dict(SIMULATED_EFFECTS if effects is None else effects)
    ids, matrix = read_features(con, cutoff)
    purchased = {
        row[0]
        for row in con.execute(
            """
            select distinct customer_id from mkt.int_sales
            where ordered_at >= $cutoff::timestamp and ordered_at < $cutoff::timestamp + to_days($horizon::integer)
            """,
            {"cutoff": str(cutoff), "horizon": int(horizon_days)},
        ).fetchall()
    }
    bought = np.array([customer_id in purchased for customer_id in ids])
    segment = simulated_segment(matrix[:, FEATURE_NAMES.index("recency_days")], matrix[:, FEATURE_NAMES.index("frequency")])

    rng = np.random.default_rng(seed)
    treated = rng.random(len(ids)) < treated_share
    outcome = bought.copy()
    draws = rng.random(len(ids))
    for name, effect in effects.items():
        members = segment == name
        if not members.any():
            continue
        base_rate = bought[members].mean()
        if effect > 0 and base_rate < 1:
            flip = members & treated & ~bought & (draws < effect / (1 - base_rate))
            outcome[flip] = True
        elif effect < 0 and base_rate > 0:
            flip = members & treated & bought & (draws < -effect / base_rate)
            outcome[flip] = False

    occurred_at = datetime.combine(date.fromisoformat(str(cutoff)[:10]), datetime.min.time())
    load_id = f"simulation-{campaign_id}"
    con.executemany(
        "insert into raw.interactions values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (load_id, "simulation", line, customer_id, occurred_at, "email", campaign_id, "campaign",
             "purchase" if responded else "no_purchase", bool(is_treated))
            for line, (customer_id, responded, is_treated) in enumerate(zip(ids, outcome, treated), start=1)
        ],
    )
    return SimulatedCampaign(
        campaign_id=campaign_id,
        cutoff=occurred_at.date(),
        n_customers=len(ids),
        segments=dict(zip(ids, segment.tolist())),
        effects=effects,
    )


# --- Scoring ----------------------------------------------------------------


def write_customer_uplift(
    con: duckdb.DuckDBPyConnection, model: TLearnerUplift, *, action: str, model_version: str
) -> int:
    """Score every customer of ``mkt.customer_features`` and replace their rows for ``action`` in ``mkt.customer_uplift``.

    ``incremental_spend`` is uplift times the customer's mean order value.
    Returns the number of customers scored.
    """
    ids, matrix = read_features(con, con.execute("select max(cutoff_date) from mkt.customer_features").fetchall()[0][0])
    treated, control = model.predict_arms(matrix)
    order_value = np.nan_to_num(matrix[:, FEATURE_NAMES.index("avg_order_value")], nan=0.0)
    scored_at = datetime.now(timezone.utc).replace(tzinfo=None)
    rows = [
        (customer_id, action, float(t), float(c), float(t - c), float((t - c) * value), model_version, scored_at)
        for customer_id, t, c, value in zip(ids, treated, control, order_value)
    ]
    con.execute("begin transaction")
    try:
        con.execute("delete from mkt.customer_uplift where action = ?", [action])
        con.executemany("insert into mkt.customer_uplift values (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return len(rows)
