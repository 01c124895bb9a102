"""Commands that open the database to other SQL clients: compile and serve."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from duckmkt.cli import fail
from duckmkt.commands.common import State
from duckmkt.errors import DuckmktError
from duckmkt.i18n import _


def register(app: typer.Typer) -> None:
    """Add the compile and serve commands to ``app``."""

    @app.command(
        "compile",
        help=_("Compile a trained model into SQL macros stored in the database, so any DuckDB client can score without Python."),
    )
    def compile_command(
        db: Annotated[Path, typer.Argument(help=_("DuckDB database file."))],
        model: Annotated[
            Optional[str], typer.Option(help=_("Model version or model folder. Default: the newest version of NAME."))
        ] = None,
        name: Annotated[str, typer.Option(help=_("Model name under MODELS_DIR."))] = "customer",
        models_dir: Annotated[Path, typer.Option(help=_("Folder of the model registry."))] = Path("models"),
    ) -> None:
        from duckmkt.clients import compile_command as run

        try:
            run(db, model=model, name=name, models_dir=models_dir)
        except DuckmktError as error:
            fail(error, State.debug)

    @app.command(
        "serve",
        help=_("Serve the database over the PostgreSQL wire protocol for BI tools, with the scoring functions callable."),
    )
    def serve_command(
        db: Annotated[Path, typer.Argument(help=_("DuckDB database file."))],
        host: Annotated[str, typer.Option(help=_("Address to listen on. Default: loopback only."))] = "127.0.0.1",
        port: Annotated[int, typer.Option(help=_("TCP port to listen on."))] = 5433,
        user: Annotated[str, typer.Option(help=_("User name clients must log in with."))] = "duckmkt",
        password_env: Annotated[
            str, typer.Option(help=_("Environment variable holding the password clients must give."))
        ] = "DUCKMKT_SERVE_PASSWORD",
        password_file: Annotated[
            Optional[Path], typer.Option(help=_("File holding the password (first line); overrides --password-env."))
        ] = None,
        read_write: Annotated[
            bool, typer.Option("--read-write", help=_("Allow writes (INSERT, CREATE, ...). Default: read-only."))
        ] = False,
        max_connections: Annotated[int, typer.Option(help=_("Maximum number of clients connected at once."))] = 32,
        model: Annotated[
            Optional[str], typer.Option(help=_("Model version or model folder. Default: the newest version of NAME."))
        ] = None,
        name: Annotated[str, typer.Option(help=_("Model name under MODELS_DIR."))] = "customer",
        models_dir: Annotated[Path, typer.Option(help=_("Folder of the model registry."))] = Path("models"),
    ) -> None:
        from duckmkt.clients import serve_command as run

        configure_server_logging(State.debug)
        try:
            run(
                db,
                host=host,
                port=port,
                user=user,
                password_env=password_env,
                password_file=password_file,
                read_write=read_write,
                max_connections=max_connections,
                model=model,
                name=name,
                models_dir=models_dir,
            )
        except DuckmktError as error:
            fail(error, State.debug)


def configure_server_logging(debug: bool) -> None:
    """Log the server's connections, queries and errors to stderr with timestamps, at INFO (DEBUG with --debug)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    server_logger = logging.getLogger("duckmkt.server")
    server_logger.handlers[:] = [handler]
    server_logger.setLevel(logging.DEBUG if debug else logging.INFO)
    server_logger.propagate = False
