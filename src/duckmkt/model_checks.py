"""Whether a trained model's heads learned anything: its error metrics against the baselines'.

A model stopped after a few epochs can predict spend in the millions. Its
validation metrics, stored in metadata.json, show it: an error metric many
times the baseline's. Training warns about such a model, and the commands
that pick a version by default skip it (``scoring.resolve_model_dir``).
"""

from __future__ import annotations

from collections.abc import Mapping

# An error metric this many times the baseline's means the head has not learned.
# The default run on Online Retail is at most 1.1 times (spend_rmse 2,049 against 1,843).
FAR_WORSE_RATIO = 3.0
ERROR_METRICS = ("purchase_log_loss", "spend_mae", "spend_rmse", "churn_log_loss", "purchases_mae")


def far_worse_metrics(metrics: Mapping[str, float], baselines: Mapping[str, float]) -> list[tuple[str, float, float]]:
    """Return (metric, model value, baseline value) for each error metric at least FAR_WORSE_RATIO times the baseline's."""
    far_worse = []
    for metric in ERROR_METRICS:
        model_value, baseline_value = metrics.get(metric), baselines.get(metric)
        if model_value is None or baseline_value is None or baseline_value <= 0:
            continue
        if model_value >= FAR_WORSE_RATIO * baseline_value:
            far_worse.append((metric, float(model_value), float(baseline_value)))
    return far_worse


def describe(far_worse: list[tuple[str, float, float]]) -> str:
    """Return the failed metrics as text, such as 'spend_mae 14.5 times the baseline's (5,369.67 against 369.30)'."""
    from duckmkt.i18n import _

    return "; ".join(
        _("{metric} {ratio} times the baseline's ({model} against {baseline})").format(
            metric=metric, ratio=f"{model_value / baseline_value:,.1f}", model=f"{model_value:,.2f}", baseline=f"{baseline_value:,.2f}"
        )
        for metric, model_value, baseline_value in far_worse
    )
