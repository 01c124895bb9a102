"""The HTML report: ``write_report`` renders one self-contained page of charts and tables.

Charts are drawn by plotly, whose JavaScript is inlined, so the file needs no
network. Text follows the active language (``duckmkt.i18n``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb

from duckmkt.errors import DuckmktError
from duckmkt.i18n import _
from duckmkt.report.data import ReportData, collect
from duckmkt.report.page import CHART_IDS, render

logger = logging.getLogger(__name__)

__all__ = ["CHART_IDS", "ReportData", "collect", "render", "write_report"]


def write_report(con: duckdb.DuckDBPyConnection, scorer, output: str | Path) -> Path:
    """Write the report of ``scorer``'s model on the data in ``con`` to ``output``; return the path.

    ``score_customer`` must be registered on ``con`` with ``scorer``.
    """
    output = Path(output)
    page = render(collect(con, scorer))
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(page, encoding="utf-8")
    except OSError as error:
        raise DuckmktError(_("Could not write the report to {path}: {error}").format(path=output, error=error)) from error
    logger.info("Wrote the report to %s (%d bytes)", output, len(page.encode("utf-8")))
    return output
