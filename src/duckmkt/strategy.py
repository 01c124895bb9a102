"""Default strategy rules: from predictions to a marketing action.

Rules are checked in priority order and the first that matches gives the
customer's strategy code. Thresholds are quantiles of the predictions on the
model's validation rows, stored in the model metadata, so they follow the
customer base instead of constants picked by hand.

Why these rules, in this order:

1. ``retention``: churn_risk in the top quarter and expected_spend at or
   above the median. A valuable customer about to leave is worth a personal
   retention offer or call before anything else.
2. ``tailored_service``: expected_spend in the top tenth. The biggest
   spenders get service (account manager, priority handling) rather than
   more advertising.
3. ``product_recommendation``: purchase_prob at or above the median. A
   customer likely to buy soon responds to relevant products.
4. ``personalized_ad``: purchase_prob in the second quarter. A lukewarm
   customer needs a reason to come back: a personalized ad or offer.
5. ``no_action``: everyone else. A low chance of buying and low value do
   not pay for a contact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from duckmkt.i18n import N_, _

# Quantile of which prediction each threshold is.
THRESHOLD_QUANTILES: dict[str, tuple[str, float]] = {
    "churn_risk_high": ("churn_risk", 0.75),
    "expected_spend_median": ("expected_spend", 0.50),
    "expected_spend_top": ("expected_spend", 0.90),
    "purchase_prob_median": ("purchase_prob", 0.50),
    "purchase_prob_low": ("purchase_prob", 0.25),
}


@dataclass(frozen=True)
class Strategy:
    """A stable strategy code with its label and action."""

    code: str
    label: str
    action: str

    def localized_label(self) -> str:
        return _(self.label)

    def localized_action(self) -> str:
        return _(self.action)


STRATEGIES: dict[str, Strategy] = {
    strategy.code: strategy
    for strategy in (
        Strategy("retention", N_("Retention"), N_("Contact with a personal retention offer before the customer leaves.")),
        Strategy("tailored_service", N_("Tailored service"), N_("Give priority service and a personal contact.")),
        Strategy(
            "product_recommendation", N_("Product recommendation"), N_("Recommend products matched to past purchases.")
        ),
        Strategy("personalized_ad", N_("Personalized ad"), N_("Show a personalized ad or offer to bring the customer back.")),
        Strategy("no_action", N_("No action"), N_("No paid contact; keep in low-cost channels.")),
    )
}


def compute_thresholds(predictions: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Return the rule thresholds as quantiles of ``predictions`` (one array per head)."""
    return {
        name: float(np.quantile(np.asarray(predictions[head], dtype=np.float64).ravel(), q))
        for name, (head, q) in THRESHOLD_QUANTILES.items()
    }


def assign_strategies(
    purchase_prob: np.ndarray,
    expected_spend: np.ndarray,
    churn_risk: np.ndarray,
    thresholds: Mapping[str, float],
) -> np.ndarray:
    """Return the strategy code of every row as an array of strings."""
    conditions = [
        (churn_risk >= thresholds["churn_risk_high"]) & (expected_spend >= thresholds["expected_spend_median"]),
        expected_spend >= thresholds["expected_spend_top"],
        purchase_prob >= thresholds["purchase_prob_median"],
        purchase_prob >= thresholds["purchase_prob_low"],
    ]
    choices = ["retention", "tailored_service", "product_recommendation", "personalized_ad"]
    return np.select(conditions, choices, default="no_action")
