"""Typer commands of ``duckmkt``, built after the language is chosen.

Each module adds the commands of one area with a ``register(app)``
function; ``build_app`` calls them in the order the help lists them.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from duckmkt import __version__
from duckmkt.cli import configure_logging
from duckmkt.commands import actions, clients, core, insight, models, spark
from duckmkt.commands.common import State
from duckmkt.commands.localized import LocalizedTyper
from duckmkt.i18n import _

# Modules whose register(app) adds commands, in help order.
COMMAND_MODULES = (core, insight, clients, models, actions, spark)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"duckmkt {__version__}")
        raise typer.Exit()


def build_app() -> typer.Typer:
    """Return the Typer application with help text in the active language."""
    app = LocalizedTyper(
        name="duckmkt",
        help=_("Personalized marketing with machine learning inside DuckDB."),
        no_args_is_help=True,
        add_completion=False,
        # Local variables may hold customer rows: never print them.
        pretty_exceptions_show_locals=False,
    )

    @app.callback()
    def common(
        lang: Annotated[
            Optional[str],
            typer.Option("--lang", help=_("Language of messages and help: en or zh. Default: from LC_ALL, LC_MESSAGES or LANG.")),
        ] = None,
        debug: Annotated[bool, typer.Option("--debug", help=_("Show progress details, SQL and tracebacks."))] = False,
        version: Annotated[
            bool,
            typer.Option("--version", callback=_print_version, is_eager=True, help=_("Show the duckmkt version and exit.")),
        ] = False,
    ) -> None:
        State.debug = debug
        configure_logging(debug)

    for module in COMMAND_MODULES:
        module.register(app)
    return app
