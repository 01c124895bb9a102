"""Open a duckmkt database file with the views installed."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import duckdb

from duckmkt import sql_views
from duckmkt.errors import DuckmktError
from duckmkt.i18n import _, get_language

logger = logging.getLogger(__name__)

# Storage format of newly created files. DuckDB 2.0 writes format v2.0.0 by
# default, which DuckDB 1.x (the CLI 1.5 and the JDBC drivers of BI tools)
# cannot open. Format v1.0.0 is readable by every DuckDB since 1.0. An
# existing file keeps the format it was created with.
STORAGE_COMPATIBILITY_VERSION = "v1.0.0"


# DuckDB 2.0.1 reports a lock conflict as an IOException "Could not set lock on
# file ...: Conflicting lock is held in <program> (PID <pid>)".
_LOCK_CONFLICT = "Could not set lock on file"
_LOCK_HOLDER_PID = re.compile(r"\(PID (\d+)\)")


class DatabaseLockedError(DuckmktError):
    """Another process holds a lock on the database file that conflicts with the requested one."""


def locked_database_error(
    path: str | Path, error: duckdb.Error, *, read_only: bool, hint: str | None = None
) -> DatabaseLockedError | None:
    """Translate DuckDB's lock conflict on ``path`` into a DatabaseLockedError; return None for any other error.

    DuckDB lets one process open a file for writing, and several processes
    only when every one of them opens it read-only. ``hint`` is a translated
    sentence appended to the message, for a command that can open the file
    read-only.
    """
    if not isinstance(error, duckdb.IOException) or _LOCK_CONFLICT not in str(error):
        return None
    if read_only:
        message = _(
            "Database {path} is locked because another program has it open for writing; close that program or its "
            "DuckDB connection, or let it open the file read-only, and run the command again."
        ).format(path=path)
    else:
        message = _(
            "Database {path} is locked because another program has it open; close that program or its DuckDB "
            "connection and run the command again. DuckDB shares a file between programs only when all of them open "
            "it read-only."
        ).format(path=path)
    holder = _LOCK_HOLDER_PID.search(str(error))
    if holder is not None:
        # Chinese sentences follow each other without a space.
        separator = "" if get_language() == "zh" else " "
        message += separator + _("The lock is held by process {pid}.").format(pid=holder.group(1))
    if hint is not None:
        message += " " + hint
    return DatabaseLockedError(message)


def check_not_locked(path: str | Path) -> None:
    """Raise DatabaseLockedError when another process holds a lock on the existing file ``path``.

    It opens and closes the file, because DuckDB reports a lock only when a connection fails.
    Other errors are ignored because the caller replaces the file anyway.
    """
    try:
        duckdb.connect(str(path)).close()
    except duckdb.Error as error:
        locked = locked_database_error(path, error, read_only=False)
        if locked is not None:
            raise locked from error


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
        locked = locked_database_error(path, error, read_only=read_only)
        if locked is not None:
            raise locked from error
        raise DuckmktError(
            _("Could not open database {path}: {error}").format(path=path, error=error)
        ) from error
    if not read_only:
        sql_views.install(con)
    return con
