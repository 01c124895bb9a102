"""The "buy till you die" baselines: BG/NBD for purchases and Gamma-Gamma for spend.

Both are fitted by maximum likelihood with scipy, following:

- BG/NBD: Fader, Hardie and Lee (2005), "Counting your customers the easy
  way: an alternative to the Pareto/NBD model", Marketing Science 24(2).
  Parameters r, alpha (Gamma purchase rate) and a, b (Beta dropout).
- Gamma-Gamma: Fader, Hardie and Lee (2005), "RFM and CLV: using iso-value
  curves for customer base analysis", Journal of Marketing Research 42(4).
  Parameters p, q, gamma.

Inputs are the per-customer summary of ``mkt.btyd_summary_at(cutoff)``:
``frequency`` (repeat purchase days), ``recency`` and ``T`` in weeks, and the
mean spend of a repeat purchase day. The estimators follow the scikit-learn
contract: parameters in ``__init__``, ``fit`` returns self, learned state
ends in ``_``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

import duckdb
import numpy as np
from scipy import optimize, special

from duckmkt.errors import DataError
from duckmkt.i18n import _

logger = logging.getLogger(__name__)

# Starting point of the optimizer, on the log scale of each parameter.
_BGNBD_START = np.log([0.5, 5.0, 1.0, 2.0])
_GAMMA_GAMMA_START = np.log([2.0, 2.0, 10.0])


@dataclass
class BTYDSummary:
    """Per-customer calibration summary, aligned with ``customer_ids``; durations in weeks."""

    customer_ids: np.ndarray
    frequency: np.ndarray
    recency: np.ndarray
    T: np.ndarray
    monetary_value: np.ndarray

    @property
    def n_customers(self) -> int:
        return int(self.frequency.size)


def summary_at(con: duckdb.DuckDBPyConnection, cutoff: date | str) -> BTYDSummary:
    """Read ``mkt.btyd_summary_at(cutoff)`` ordered by customer_id."""
    rows = con.execute(
        """
        select customer_id, frequency, recency_weeks, T_weeks, monetary_value
        from mkt.btyd_summary_at(?::date)
        order by customer_id
        """,
        [str(cutoff)],
    ).fetchall()
    if not rows:
        raise DataError(
            _("No customer has a sale before {cutoff}; choose a later cutoff or load order lines first.").format(
                cutoff=cutoff
            )
        )
    columns = list(zip(*rows))
    return BTYDSummary(
        customer_ids=np.array(columns[0], dtype=object),
        frequency=np.array(columns[1], dtype=np.float64),
        recency=np.array(columns[2], dtype=np.float64),
        T=np.array(columns[3], dtype=np.float64),
        monetary_value=np.array(columns[4], dtype=np.float64),
    )


def _minimize(objective, start: np.ndarray) -> np.ndarray:
    """Minimize ``objective`` over log-parameters; return the positive parameters."""
    result = optimize.minimize(objective, start, method="Nelder-Mead", options={"maxiter": 20_000, "xatol": 1e-8, "fatol": 1e-10})
    # Nelder-Mead finds the basin robustly; BFGS then polishes the optimum.
    polished = optimize.minimize(objective, result.x, method="BFGS")
    best = polished if polished.fun <= result.fun else result
    return np.exp(best.x)


class BetaGeometricNBD:
    """BG/NBD model of repeat purchases: Poisson purchases while alive, Beta-geometric dropout after each purchase.

    Parameters
    ----------
    penalty : float
        L2 penalty on the parameters, added to the negative log-likelihood
        for numerical stability; 0 gives the plain maximum-likelihood fit.
    """

    def __init__(self, penalty: float = 0.0):
        self.penalty = penalty

    @staticmethod
    def log_likelihood(params: np.ndarray, frequency: np.ndarray, recency: np.ndarray, T: np.ndarray) -> np.ndarray:
        """Return each customer's log-likelihood under ``params`` = (r, alpha, a, b)."""
        r, alpha, a, b = params
        x = frequency
        a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
        a2 = special.gammaln(a + b) + special.gammaln(b + x) - special.gammaln(b) - special.gammaln(a + b + x)
        a3 = -(r + x) * np.log(alpha + T)
        # The dropout term exists only for customers with a repeat purchase;
        # b + x - 1 is then at least b, so the log stays finite.
        has_repeat = x > 0
        a4 = np.where(
            has_repeat,
            np.log(a) - np.log(np.where(has_repeat, b + x - 1, 1.0)) - (r + x) * np.log(alpha + recency),
            -np.inf,
        )
        return a1 + a2 + np.logaddexp(a3, a4)

    def fit(self, frequency: np.ndarray, recency: np.ndarray, T: np.ndarray) -> BetaGeometricNBD:
        frequency, recency, T = (np.asarray(v, dtype=np.float64) for v in (frequency, recency, T))
        _check_summary(frequency, recency, T)

        def objective(log_params: np.ndarray) -> float:
            params = np.exp(log_params)
            value = -self.log_likelihood(params, frequency, recency, T).sum() + self.penalty * np.sum(params**2)
            return float(value) if np.isfinite(value) else 1e300

        self.r_, self.alpha_, self.a_, self.b_ = _minimize(objective, _BGNBD_START)
        self.log_likelihood_ = float(self.log_likelihood(self.params_, frequency, recency, T).sum())
        logger.debug("BG/NBD fit: r %.4f, alpha %.4f, a %.4f, b %.4f", *self.params_)
        return self

    @property
    def params_(self) -> np.ndarray:
        return np.array([self.r_, self.alpha_, self.a_, self.b_])

    def probability_alive(self, frequency: np.ndarray, recency: np.ndarray, T: np.ndarray) -> np.ndarray:
        """Return P(alive at T | frequency, recency, T)."""
        r, alpha, a, b = self.params_
        x = np.asarray(frequency, dtype=np.float64)
        has_repeat = x > 0
        ratio = np.where(
            has_repeat,
            a / np.where(has_repeat, b + x - 1, 1.0) * np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + recency))),
            0.0,
        )
        return 1.0 / (1.0 + ratio)

    def conditional_expected_purchases(
        self, t: float, frequency: np.ndarray, recency: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        """Return E[purchases in (T, T + t] | history], with ``t`` in weeks (equation 10 of the BG/NBD paper)."""
        r, alpha, a, b = self.params_
        x = np.asarray(frequency, dtype=np.float64)
        z = t / (alpha + T + t)
        hypergeometric = special.hyp2f1(r + x, b + x, a + b + x - 1, z)
        numerator = (a + b + x - 1) / (a - 1) * (1.0 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hypergeometric)
        has_repeat = x > 0
        denominator = 1.0 + np.where(
            has_repeat,
            a / np.where(has_repeat, b + x - 1, 1.0) * ((alpha + T) / (alpha + recency)) ** (r + x),
            0.0,
        )
        return numerator / denominator

    def probability_of_purchase(self, t: float, frequency: np.ndarray, recency: np.ndarray, T: np.ndarray) -> np.ndarray:
        """Return P(at least one purchase in (T, T + t] | history), with ``t`` in weeks.

        A customer alive at T with rate lambda stays quiet for t weeks with
        probability exp(-lambda t); given alive, lambda ~ Gamma(r + x, alpha + T).
        """
        r, alpha, _a, _b = self.params_
        x = np.asarray(frequency, dtype=np.float64)
        quiet_if_alive = ((alpha + T) / (alpha + T + t)) ** (r + x)
        return self.probability_alive(frequency, recency, T) * (1.0 - quiet_if_alive)


class GammaGamma:
    """Gamma-Gamma model of the mean spend per transaction, fitted on customers with repeat purchases.

    Parameters
    ----------
    penalty : float
        L2 penalty on the parameters (see BetaGeometricNBD).
    """

    def __init__(self, penalty: float = 0.0):
        self.penalty = penalty

    @staticmethod
    def log_likelihood(params: np.ndarray, frequency: np.ndarray, monetary_value: np.ndarray) -> np.ndarray:
        """Return each customer's log-likelihood of the mean spend ``monetary_value`` over ``frequency`` transactions."""
        p, q, gamma = params
        x, m = frequency, monetary_value
        return (
            special.gammaln(p * x + q)
            - special.gammaln(p * x)
            - special.gammaln(q)
            + q * np.log(gamma)
            + (p * x - 1) * np.log(m)
            + p * x * np.log(x)
            - (p * x + q) * np.log(gamma + m * x)
        )

    def fit(self, frequency: np.ndarray, monetary_value: np.ndarray) -> GammaGamma:
        frequency = np.asarray(frequency, dtype=np.float64)
        monetary_value = np.asarray(monetary_value, dtype=np.float64)
        usable = (frequency > 0) & (monetary_value > 0)
        if usable.sum() < 2:
            raise DataError(
                _("Gamma-Gamma needs at least 2 customers with a repeat purchase of positive value; found {count}.").format(
                    count=int(usable.sum())
                )
            )
        x, m = frequency[usable], monetary_value[usable]

        def objective(log_params: np.ndarray) -> float:
            params = np.exp(log_params)
            value = -self.log_likelihood(params, x, m).sum() + self.penalty * np.sum(params**2)
            return float(value) if np.isfinite(value) else 1e300

        self.p_, self.q_, self.gamma_ = _minimize(objective, _GAMMA_GAMMA_START)
        self.n_customers_ = int(usable.sum())
        logger.debug("Gamma-Gamma fit: p %.4f, q %.4f, gamma %.4f", self.p_, self.q_, self.gamma_)
        return self

    def conditional_expected_spend_per_purchase(self, frequency: np.ndarray, monetary_value: np.ndarray) -> np.ndarray:
        """Return E[spend of one transaction | history]; the population mean for customers without a repeat purchase.

        The population mean p * gamma / (q - 1) is finite only for q > 1;
        with q <= 1 the mean of the observed spends is used instead.
        """
        p, q, gamma = self.p_, self.q_, self.gamma_
        x = np.asarray(frequency, dtype=np.float64)
        m = np.asarray(monetary_value, dtype=np.float64)
        if q > 1:
            population_mean = p * gamma / (q - 1)
        elif np.any(x > 0):
            population_mean = float(np.mean(m[x > 0]))
        else:
            population_mean = 0.0
        individual = (p * (gamma + x * m)) / (p * x + q - 1)
        return np.where(x > 0, individual, population_mean)


def _check_summary(frequency: np.ndarray, recency: np.ndarray, T: np.ndarray) -> None:
    if frequency.size == 0:
        raise DataError(_("BG/NBD needs at least one customer; the summary is empty."))
    if np.any(recency > T + 1e-9) or np.any(frequency < 0) or np.any(recency < 0):
        raise DataError(
            _("The BG/NBD summary is invalid: it needs 0 <= recency <= T and frequency >= 0 for every customer; rebuild it from mkt.btyd_summary_at.")
        )


@dataclass
class BTYDPredictions:
    """BG/NBD and Gamma-Gamma predictions for a horizon of ``horizon_days`` after the cutoff."""

    customer_ids: np.ndarray
    purchase_prob: np.ndarray
    expected_purchases: np.ndarray
    expected_spend: np.ndarray


def fit_predict(con: duckdb.DuckDBPyConnection, cutoff: date | str, horizon_days: int) -> tuple[BTYDPredictions, dict[str, float]]:
    """Fit BG/NBD and Gamma-Gamma on the sales before ``cutoff`` and predict the next ``horizon_days``.

    Returns the predictions, one per customer active before the cutoff, and
    the fitted parameters.
    """
    summary = summary_at(con, cutoff)
    bgnbd = BetaGeometricNBD().fit(summary.frequency, summary.recency, summary.T)
    gamma_gamma = GammaGamma().fit(summary.frequency, summary.monetary_value)

    weeks = horizon_days / 7.0
    expected_purchases = bgnbd.conditional_expected_purchases(weeks, summary.frequency, summary.recency, summary.T)
    spend_per_purchase = gamma_gamma.conditional_expected_spend_per_purchase(summary.frequency, summary.monetary_value)
    predictions = BTYDPredictions(
        customer_ids=summary.customer_ids,
        purchase_prob=bgnbd.probability_of_purchase(weeks, summary.frequency, summary.recency, summary.T),
        expected_purchases=expected_purchases,
        expected_spend=expected_purchases * spend_per_purchase,
    )
    params = {
        "r": float(bgnbd.r_),
        "alpha": float(bgnbd.alpha_),
        "a": float(bgnbd.a_),
        "b": float(bgnbd.b_),
        "p": float(gamma_gamma.p_),
        "q": float(gamma_gamma.q_),
        "gamma": float(gamma_gamma.gamma_),
    }
    return predictions, params
