"""The ``duckmkt`` command line.

Commands only parse options and call one function each; the work lives in
the pipeline modules. The language is chosen before the commands are built,
because Typer reads help text when a command is declared.
"""

from __future__ import annotations

import gettext
import logging
import os
import sys
from pathlib import Path

from duckmkt import i18n
from duckmkt.errors import DuckmktError

logger = logging.getLogger("duckmkt")


def _language_option_first(argv: list[str]) -> list[str]:
    """Return ``argv`` with its --lang option moved before the command name.

    --lang belongs to the top-level ``duckmkt`` command, but users also write
    it after the command (``duckmkt quality DB --lang zh``), where Typer would
    reject it as an unknown option of that command. Nothing after ``--`` is moved.
    """
    for index, argument in enumerate(argv):
        if argument == "--":
            break
        if argument == "--lang" and index + 1 < len(argv):
            return [argument, argv[index + 1], *argv[:index], *argv[index + 2 :]]
        if argument.startswith("--lang="):
            return [argument, *argv[:index], *argv[index + 1 :]]
    return list(argv)


def _language_from_argv(argv: list[str]) -> str | None:
    """Return the value of --lang in ``argv``, or None when it is absent."""
    for index, argument in enumerate(argv):
        if argument == "--lang" and index + 1 < len(argv):
            return argv[index + 1]
        if argument.startswith("--lang="):
            return argument.split("=", 1)[1]
    return None


def activate_language(language: str | None) -> str:
    """Select the language for duckmkt's messages and for Typer's own help text."""
    active = i18n.set_language(language)
    # Typer translates its panel titles ("Options", "Commands", ...) through
    # the global gettext domain when it is imported. Pointing that domain at
    # our catalog makes them come out in the same language.
    os.environ["LANGUAGE"] = "zh_CN" if active == "zh" else "en"
    gettext.bindtextdomain(i18n.DOMAIN, str(i18n.LOCALE_DIR))
    gettext.textdomain(i18n.DOMAIN)
    return active


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``duckmkt`` command."""
    argv = _language_option_first(sys.argv[1:] if argv is None else argv)
    try:
        activate_language(_language_from_argv(argv))
    except ValueError as error:
        print(i18n._("Error: {message}").format(message=error), file=sys.stderr)
        raise SystemExit(2) from error

    from duckmkt.commands import build_app

    app = build_app()
    try:
        app(args=argv, prog_name="duckmkt")
    except Exception as error:
        from duckmkt.commands.common import State

        if State.debug:
            raise
        # The message of an unexpected error (a DuckDB conversion error, say)
        # may quote row values, so only its type is printed; --debug shows it.
        print(
            i18n._("Error: unexpected {kind}; rerun with --debug to see the traceback.").format(kind=type(error).__name__),
            file=sys.stderr,
        )
        raise SystemExit(1) from None


def configure_logging(debug: bool) -> None:
    """Send duckmkt's log records to stderr; debug adds the SQL text."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s" if not debug else "%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("duckmkt")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    root.propagate = False


def fail(error: DuckmktError, debug: bool) -> None:
    """Print one 'Error: ...' line (a traceback only with --debug) and exit 1."""
    import typer

    if debug:
        raise error
    typer.echo(i18n._("Error: {message}").format(message=error), err=True)
    raise typer.Exit(code=1)


def default_db_path() -> Path:
    return Path("out") / "demo.duckdb"
