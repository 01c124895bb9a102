"""The work of the ``compile`` and ``serve`` commands, callable without the CLI.

Each function runs one step, prints its results in the active language and
raises ``DuckmktError`` on failure; ``duckmkt.commands.clients`` only parses
options.
"""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb
import typer

from duckmkt.database import connect_database
from duckmkt.errors import DuckmktError
from duckmkt.i18n import _

logger = logging.getLogger(__name__)

# Storage formats that DuckDB 1.x clients can open; see database.STORAGE_COMPATIBILITY_VERSION.
_READABLE_BY_DUCKDB_1 = ("v0.", "v1.")


def echo(text: str = "") -> None:
    typer.echo(text)


def require_extra(module: str) -> None:
    """Raise DuckmktError with the install command when ``module`` of the clients extra is missing."""
    from importlib.util import find_spec

    if find_spec(module) is None:
        raise DuckmktError(
            _("This command needs the Python package {module}, which is not installed; install it with: pip install 'duckmkt[clients]'").format(
                module=module
            )
        )


def storage_version(con: duckdb.DuckDBPyConnection) -> str:
    """Return the storage format of the database file of ``con``, for example 'v1.0.0+'."""
    rows = con.execute(
        "select tags['storage_version'] from duckdb_databases() where database_name = current_database()"
    ).fetchall()
    return str(rows[0][0]) if rows and rows[0][0] is not None else "unknown"


def compile_command(
    db: Path,
    *,
    model: str | None = None,
    name: str = "customer",
    models_dir: Path = Path("models"),
):
    """Compile a model into SQL macros stored in ``db`` and print what was created."""
    require_extra("onnx")
    from duckmkt.compile import PREDICTIONS_VIEW, SCORE_MACRO, compile_model
    from duckmkt.scoring import resolve_model_dir

    model_dir = resolve_model_dir(model, models_dir=models_dir, name=name)
    con = connect_database(db, create=False)
    try:
        compiled = compile_model(con, model_dir)
        version = storage_version(con)
    finally:
        con.close()

    echo(
        _("Compiled model {name} version {version} into {macro} ({ctes} steps; ONNX operators: {operators}).").format(
            name=compiled.name,
            version=compiled.version,
            macro=SCORE_MACRO,
            ctes=compiled.n_ctes,
            operators=", ".join(compiled.operators),
        )
    )
    echo(_("Any DuckDB client can now score with: select * from {view};").format(view=PREDICTIONS_VIEW))
    warn_if_unreadable(db, version)
    return compiled


def warn_if_unreadable(db: Path, version: str) -> None:
    """Print a warning when DuckDB 1.x clients cannot open ``db``."""
    if version.startswith(_READABLE_BY_DUCKDB_1):
        return
    echo(
        _(
            "Warning: {db} has storage format {version}, which DuckDB 1.x clients (the DuckDB CLI 1.5, BI tool drivers) "
            "cannot open. Copy it into a file in format v1.0.0 as shown in docs/clients.md."
        ).format(db=db, version=version)
    )


def compile_after_training(db: Path, model_dir: Path) -> None:
    """Compile a newly trained model into ``db``; print a warning instead of failing when it cannot."""
    try:
        compile_command(db, model=str(model_dir))
    except DuckmktError as error:
        # The model is saved and usable through the UDF, so training succeeded.
        logger.warning(_("Could not compile model %s into SQL: %s"), model_dir, error)
        echo(_("Warning: the model was not compiled into SQL: {error}").format(error=error))


DEFAULT_PASSWORD_ENV = "DUCKMKT_SERVE_PASSWORD"


def read_password(password_env: str = DEFAULT_PASSWORD_ENV, password_file: Path | None = None) -> str:
    """Return the server password from ``password_file`` or the environment variable ``password_env``.

    The password is never taken from the command line, where other users of
    the machine could read it in the process list.
    """
    import os

    if password_file is not None:
        try:
            password = Path(password_file).read_text(encoding="utf-8").strip("\r\n")
        except OSError as error:
            raise DuckmktError(
                _("Could not read the password file {path}: {error}").format(path=password_file, error=error)
            ) from error
    else:
        password = os.environ.get(password_env, "")
    if not password:
        raise DuckmktError(
            _("No password set: the server requires one. Set the environment variable {variable} or pass --password-file.").format(
                variable=password_env
            )
        )
    return password


def serve_command(
    db: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 5433,
    user: str = "duckmkt",
    password_env: str = DEFAULT_PASSWORD_ENV,
    password_file: Path | None = None,
    read_write: bool = False,
    max_connections: int = 32,
    model: str | None = None,
    name: str = "customer",
    models_dir: Path = Path("models"),
) -> None:
    """Serve ``db`` over the PostgreSQL wire protocol until SIGTERM or Ctrl+C."""
    require_extra("pygwire")
    from duckmkt.server import ServerSettings, serve

    settings = ServerSettings(
        db=Path(db),
        password=read_password(password_env, password_file),
        host=host,
        port=port,
        user=user,
        read_only=not read_write,
        max_connections=max_connections,
        model=model,
        models_dir=models_dir,
        model_name=name,
    )
    if host not in ("127.0.0.1", "localhost", "::1"):
        echo(
            _("Warning: listening on {host} without TLS; use it only on a trusted network or behind a TLS proxy.").format(host=host)
        )
    echo(
        _("Serving {db} on {host}:{port} ({mode}); connect with: psql 'host={host} port={port} user={user} dbname=duckmkt'").format(
            db=db, host=host, port=port, user=user, mode=_("read-only") if settings.read_only else _("read-write")
        )
    )
    serve(settings)
    echo(_("Server stopped."))
