"""The feature catalog table ``mkt.feature_catalog``, built from ``duckmkt.features.FEATURES``.

One row per model input, in the model's input order: name, unit, source
table, formula, and the description in English and in Simplified Chinese.
The Chinese text comes from the gettext catalog, so it is the English text
until the catalog translates it.
"""

from __future__ import annotations

import gettext

import duckdb

from duckmkt import features, i18n

CATALOG_COLUMNS = ("position", "name", "unit", "source_table", "formula", "description_en", "description_zh")


def catalog_rows() -> list[tuple]:
    """Return one row per feature, in ``CATALOG_COLUMNS`` order."""
    chinese = gettext.translation(i18n.DOMAIN, localedir=str(i18n.LOCALE_DIR), languages=["zh_CN"], fallback=True)
    return [
        (
            position,
            feature.name,
            feature.unit,
            feature.source,
            feature.formula,
            feature.description,
            chinese.gettext(feature.description),
        )
        for position, feature in enumerate(features.FEATURES, start=1)
    ]


def write_feature_catalog(con: duckdb.DuckDBPyConnection) -> int:
    """Replace ``mkt.feature_catalog`` with the current catalog; return the number of features."""
    rows = catalog_rows()
    con.execute(
        """
        create or replace table mkt.feature_catalog (
            position integer primary key,
            name varchar not null unique,
            unit varchar not null,
            source_table varchar not null,
            formula varchar not null,
            description_en varchar not null,
            description_zh varchar not null
        )
        """
    ).fetchall()
    con.executemany("insert into mkt.feature_catalog values (?, ?, ?, ?, ?, ?, ?)", rows)
    return len(rows)
