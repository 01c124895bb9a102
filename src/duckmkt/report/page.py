"""Assemble the report's charts and tables into one self-contained HTML page.

plotly.js is inlined once in the page head, so the file opens without a
network. Each chart is a div and a script that draws it with Plotly.newPlot.
"""

from __future__ import annotations

import html
from datetime import datetime, timezone

import plotly.offline

from duckmkt import monitor, strategy
from duckmkt.i18n import _, get_language
from duckmkt.report import charts
from duckmkt.report.data import ReportData

# Names of the chart divs; the report test checks that each one rendered.
CHART_IDS = ("gain", "lift", "calibration", "importance", "strategy-mix", "score-distributions", "drift")

_STYLE = """
body { font-family: "Noto Sans", "Noto Sans CJK SC", "Microsoft YaHei", Arial, sans-serif; margin: 0; color: #222; background: #fafafa; }
main { max-width: 1100px; margin: 0 auto; padding: 24px; }
section { background: #fff; border: 1px solid #e3e3e3; border-radius: 6px; padding: 16px 20px; margin: 16px 0; }
h1 { margin-bottom: 4px; }
p.note { color: #555; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border-bottom: 1px solid #e3e3e3; padding: 4px 10px; text-align: left; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
.chart { min-height: 420px; }
"""

_PLOTLY_CONFIG = {"displayModeBar": False, "responsive": True}


def _escape(value: object) -> str:
    return html.escape(str(value), quote=True)


def _table(headers: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{_escape(header)}</th>" for header in headers)
    body = []
    for row in rows:
        cells = []
        for value in row:
            if isinstance(value, float):
                cells.append(f'<td class="number">{value:,.4g}</td>' if abs(value) < 1000 else f'<td class="number">{value:,.0f}</td>')
            elif isinstance(value, int):
                cells.append(f'<td class="number">{value:,}</td>')
            else:
                cells.append(f"<td>{_escape('' if value is None else value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _chart(chart_id: str, figure) -> str:
    return figure.to_html(full_html=False, include_plotlyjs=False, div_id=chart_id, config=_PLOTLY_CONFIG)


def _section(title: str, body: str, note: str = "") -> str:
    note_html = f'<p class="note">{_escape(note)}</p>' if note else ""
    return f"<section><h2>{_escape(title)}</h2>{note_html}{body}</section>"


def strategy_labels() -> dict[str, str]:
    """Return the label of each strategy code in the active language."""
    return {code: item.localized_label() for code, item in strategy.STRATEGIES.items()}


def model_section(data: ReportData) -> str:
    metadata = data.metadata
    rows = [
        [_("model"), metadata.get("name")],
        [_("version"), metadata.get("version")],
        [_("training cutoff"), metadata.get("train_cutoff")],
        [_("validation cutoff"), metadata.get("validation_cutoff")],
        [_("purchase horizon (days)"), metadata.get("horizon_days")],
        [_("churn horizon (days)"), metadata.get("churn_horizon_days")],
        [_("validation customers"), data.n_validation_rows],
        [_("customers scored today"), data.n_current_rows],
    ]
    metrics = metadata.get("metrics", {})
    metric_rows = [[name, float(value)] for name, value in metrics.items() if isinstance(value, (int, float))]
    body = _table([_("setting"), _("value")], rows)
    if metric_rows:
        body += _table([_("validation metric"), _("value")], metric_rows)
    return _section(_("Model"), body)


def strategy_section(data: ReportData, labels: dict[str, str]) -> str:
    rows = [[code, labels.get(code, code), count, spend] for code, count, spend in data.strategy_mix]
    table = _table([_("strategy"), _("label"), _("customers"), _("total expected spend")], rows)
    return _section(
        _("Strategy mix"),
        _chart("strategy-mix", charts.strategy_chart(data, labels)) + table,
        _("Each of today's customers gets the first strategy whose rule matches the scores."),
    )


def drift_section(data: ReportData) -> str:
    drift = data.drift
    flagged = [
        [row.kind, row.name, row.psi, row.status, row.missing_rate_change, row.out_of_range_share, ", ".join(row.flags)]
        for row in drift.flagged()
    ]
    table = (
        _table(
            [_("kind"), _("name"), "PSI", _("status"), _("missing rate change"), _("share out of range"), _("flags")],
            flagged,
        )
        if flagged
        else f"<p>{_escape(_('No feature or score is flagged.'))}</p>"
    )
    recommendation = f"<p><strong>{_escape(drift.localized_recommendation())}</strong></p>"
    note = _(
        "PSI compares today's distribution with the one when the model was trained, over the deciles of the latter: "
        "below {moderate} stable, from {moderate} to {significant} a moderate shift, {significant} or more a significant shift. "
        "Features that grow with the cutoff for every customer, such as tenure_days, have the status 'calendar': "
        "their PSI is shown but does not count toward the recommendation."
    ).format(moderate=monitor.PSI_MODERATE, significant=monitor.PSI_SIGNIFICANT)
    return _section(_("Drift since training"), recommendation + _chart("drift", charts.drift_chart(data)) + table, note)


def render(data: ReportData) -> str:
    """Return the report as one HTML document with plotly.js inlined."""
    language = get_language()
    labels = {**strategy_labels(), **data.rule_labels}
    validation_note = _(
        "Out-of-time validation rows: customers active before {cutoff}, with what they did over the next days. "
        "Early stopping also used these rows, so the curves are slightly optimistic."
    ).format(cutoff=data.metadata.get("validation_cutoff"))
    sections = [
        model_section(data),
        _section(_("Cumulative gain"), _chart("gain", charts.gain_chart(data)), validation_note),
        _section(_("Lift"), _chart("lift", charts.lift_chart(data)), validation_note),
        _section(_("Calibration"), _chart("calibration", charts.calibration_chart(data)), validation_note),
        _section(
            _("Global importance"),
            _chart("importance", charts.importance_chart(data)),
            _("Mean absolute Shapley attribution of each feature on a sample of training rows, saved with the model."),
        ),
        strategy_section(data, labels),
        _section(_("Score distributions"), _chart("score-distributions", charts.score_distribution_chart(data))),
        drift_section(data),
    ]
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    title = _("Customer model report")
    subtitle = _("Model {name} version {version}; generated {generated}.").format(
        name=data.metadata.get("name"), version=data.metadata.get("version"), generated=generated
    )
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{"zh-CN" if language == "zh" else "en"}">\n'
        "<head>\n"
        '<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_escape(title)}</title>\n"
        f"<style>{_STYLE}</style>\n"
        f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>\n'
        "</head>\n"
        "<body><main>\n"
        f"<h1>{_escape(title)}</h1>\n<p class=\"note\">{_escape(subtitle)}</p>\n"
        + "\n".join(sections)
        + "\n</main></body>\n</html>\n"
    )
