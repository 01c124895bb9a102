"""The report's charts as plotly figures, with every label in the active language."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from duckmkt import monitor
from duckmkt.i18n import N_, _
from duckmkt.report.data import HEAD_LABELS, PROBABILITY_HEADS, ReportData

HEAD_TITLES = {
    "purchase_prob": N_("Purchase probability"),
    "expected_spend": N_("Expected spend"),
    "churn_risk": N_("Churn risk"),
}
# Okabe-Ito colors, distinguishable with the common color-vision deficiencies.
HEAD_COLORS = {"purchase_prob": "#0072B2", "expected_spend": "#E69F00", "churn_risk": "#D55E00"}
STATUS_COLORS = {
    "stable": "#009E73",
    "moderate": "#E69F00",
    "significant": "#D55E00",
    "calendar": "#56B4E9",
    "not_monitored": "#999999",
}
TOP_FEATURES = 10


def _head_title(head: str) -> str:
    return _(HEAD_TITLES[head]) if head in HEAD_TITLES else head


def _layout(figure: go.Figure, title: str, height: int = 420) -> go.Figure:
    figure.update_layout(
        title=title,
        height=height,
        template="plotly_white",
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
        legend={"orientation": "h", "y": -0.18},
    )
    return figure


def gain_chart(data: ReportData) -> go.Figure:
    """Cumulative gain: share of buyers, churners and spend captured by the top-scored share of customers."""
    outcome_names = {
        "purchase_prob": _("buyers"),
        "expected_spend": _("spend"),
        "churn_risk": _("churners"),
    }
    figure = go.Figure()
    for head, curve in data.gains.items():
        figure.add_trace(
            go.Scatter(
                x=curve.x,
                y=curve.y,
                mode="lines",
                name=_("{head}: share of {outcome}").format(head=_head_title(head), outcome=outcome_names[head]),
                line={"color": HEAD_COLORS[head]},
            )
        )
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name=_("Random order"), line={"dash": "dash", "color": "#777777"}))
    figure.update_xaxes(title=_("Share of customers contacted, highest score first"), tickformat=".0%")
    figure.update_yaxes(title=_("Share captured"), tickformat=".0%")
    return _layout(figure, _("Cumulative gain on the validation rows"))


def lift_chart(data: ReportData) -> go.Figure:
    """Lift per score decile: the decile's mean outcome over the overall mean."""
    figure = go.Figure()
    deciles = [str(index) for index in range(1, len(next(iter(data.lifts.values()))) + 1)]
    for head, lifts in data.lifts.items():
        figure.add_trace(go.Bar(x=deciles, y=lifts, name=_head_title(head), marker_color=HEAD_COLORS[head]))
    figure.add_hline(y=1.0, line_dash="dash", line_color="#777777")
    figure.update_xaxes(title=_("Score decile (1 = highest scores)"))
    figure.update_yaxes(title=_("Lift"))
    figure.update_layout(barmode="group")
    return _layout(figure, _("Lift by decile on the validation rows"))


def calibration_chart(data: ReportData) -> go.Figure:
    """Mean predicted probability against the observed rate, per bin of customers."""
    figure = go.Figure()
    for head in PROBABILITY_HEADS:
        curve = data.calibration[head]
        figure.add_trace(
            go.Scatter(x=curve.x, y=curve.y, mode="lines+markers", name=_head_title(head), line={"color": HEAD_COLORS[head]})
        )
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name=_("Perfect calibration"), line={"dash": "dash", "color": "#777777"}))
    figure.update_xaxes(title=_("Mean predicted probability"), range=[0, 1])
    figure.update_yaxes(title=_("Observed rate"), range=[0, 1])
    return _layout(figure, _("Calibration on the validation rows"))


def importance_chart(data: ReportData) -> go.Figure:
    """Global importance: mean absolute attribution of the top features, one panel per head."""
    heads = list(data.importance)
    figure = make_subplots(rows=1, cols=len(heads), subplot_titles=[_head_title(head) for head in heads], horizontal_spacing=0.12)
    for column, head in enumerate(heads, start=1):
        top = list(data.importance[head].items())[:TOP_FEATURES]
        figure.add_trace(
            go.Bar(
                x=[value for _name, value in reversed(top)],
                y=[name for name, _value in reversed(top)],
                orientation="h",
                marker_color=HEAD_COLORS.get(head, "#0072B2"),
                showlegend=False,
                name=_head_title(head),
            ),
            row=1,
            col=column,
        )
    figure.update_xaxes(title=_("Mean |contribution|"))
    return _layout(figure, _("Global feature importance (mean absolute Shapley attribution)"), height=460)


def strategy_chart(data: ReportData, labels: dict[str, str]) -> go.Figure:
    """Customers and total expected spend per strategy."""
    names = [labels.get(code, code) for code, _count, _spend in data.strategy_mix]
    figure = make_subplots(rows=1, cols=2, subplot_titles=[_("Customers"), _("Total expected spend")])
    figure.add_trace(
        go.Bar(x=names, y=[count for _code, count, _spend in data.strategy_mix], marker_color="#0072B2", showlegend=False, name=_("Customers")),
        row=1,
        col=1,
    )
    figure.add_trace(
        go.Bar(x=names, y=[spend for _code, _count, spend in data.strategy_mix], marker_color="#E69F00", showlegend=False, name=_("Total expected spend")),
        row=1,
        col=2,
    )
    return _layout(figure, _("Strategy mix of today's customers"))


def score_distribution_chart(data: ReportData) -> go.Figure:
    """Histograms of today's scores, one panel per head."""
    heads = [head for head in HEAD_LABELS if head in data.current_scores]
    figure = make_subplots(rows=1, cols=len(heads), subplot_titles=[_head_title(head) for head in heads])
    for column, head in enumerate(heads, start=1):
        figure.add_trace(
            go.Histogram(x=data.current_scores[head].tolist(), nbinsx=30, marker_color=HEAD_COLORS[head], showlegend=False, name=_head_title(head)),
            row=1,
            col=column,
        )
    figure.update_yaxes(title=_("Customers"), col=1)
    return _layout(figure, _("Score distributions of today's customers"))


def drift_chart(data: ReportData) -> go.Figure:
    """Population stability index of each feature and head, with the 0.1 and 0.25 thresholds."""
    rows = [row for row in data.drift.rows if row.psi is not None]
    rows.sort(key=lambda row: row.psi, reverse=True)
    figure = go.Figure(
        go.Bar(
            x=[row.name for row in rows],
            y=[row.psi for row in rows],
            marker_color=[STATUS_COLORS[row.status] for row in rows],
            name="PSI",
            showlegend=False,
        )
    )
    figure.add_hline(y=monitor.PSI_MODERATE, line_dash="dash", line_color=STATUS_COLORS["moderate"], annotation_text=_("moderate shift"))
    figure.add_hline(y=monitor.PSI_SIGNIFICANT, line_dash="dash", line_color=STATUS_COLORS["significant"], annotation_text=_("significant shift"))
    figure.update_yaxes(title=_("Population stability index"))
    figure.update_xaxes(tickangle=-45)
    return _layout(figure, _("Drift since training: PSI per feature and score"), height=480)
