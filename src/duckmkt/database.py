"""Open a duckmkt database file with the views installed."""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb

from duckmkt import sql_views
from duckmkt.errors import DuckmktError
from duckmkt.i18n import _

logger = logging.getLogger(__name__)

# Storage format of newly created files. DuckDB 2.0 writes format v2.0.0 by
# default, which DuckDB 1.x (the CLI 1.5 and the JDBC drivers of BI tools)
# cannot open. Format v1.0.0 is readable by every DuckDB since 1.0. An
# existing file keeps the format it was created with.
STORAGE_COMPATIBILITY_VERSION = "v1.0.0"


def _is_duckdb_file(path: Path) -> bool:
    """Return whether ``path`` starts with DuckDB's file header (the magic bytes DUCK at offset 8)."""
    with path.open("rb") as handle:
        return handle.read(12)[8:12] == b"DUCK"


def connect_database(path: str | Path, *, read_only: bool = False, create: bool = True) -> duckdb.DuckDBPyConnection:
    """Open the database at ``path`` and install the views.

    A missing file is created unless ``create`` is False or the connection
    is read-only. Commands that only read data pass ``create=False``, so a
    mistyped path is an error instead of a new empty database. A read-only
    connection expects the views to be installed already.
    """
    path = Path(path)
    if path.is_dir():
        raise DuckmktError(_("{path} is a folder, not a database file; give the path of a .duckdb file.").format(path=path))
    if (read_only or not create) and not path.exists():
        raise DuckmktError(_("Database file {path} not found; create it with 'duckmkt load'.").format(path=path))
    if path.is_file() and path.stat().st_size > 0 and not _is_duckdb_file(path):
        # DuckDB 2.0.1 opens such a file as an empty in-memory database, so
        # every write would be lost without an error.
        raise DuckmktError(
            _("{path} is not a DuckDB database file; the database comes first, as in 'duckmkt load shop.duckdb {path}'.").format(
                path=path
            )
        )
    try:
        con = duckdb.connect(
            str(path), read_only=read_only, config={"storage_compatibility_version": STORAGE_COMPATIBILITY_VERSION}
        )
    except duckdb.Error as error:
        raise DuckmktError(
            _("Could not open database {path}: {error}").format(path=path, error=error)
        ) from error
    if not read_only:
        sql_views.install(con)
    return con
