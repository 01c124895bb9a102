"""Typer classes that show Click's own words in the active language.

Typer 0.29 runs on a copy of Click (``typer._click``) whose usage line and
parameter errors are plain English literals. Click 8 itself translates them
with ``gettext.gettext`` (the global domain), but the copy does not call
gettext at all, so no catalog can reach them. Typer's own words ("Options",
"Error", "Try ... for help") do go through the global gettext domain, which
``duckmkt.cli.activate_language`` binds to duckmkt's catalog.

``LocalizedTyper`` builds its command groups and commands from the classes
here. They write the usage line with a translated prefix, translate the
``--help`` option's text, and rebuild each usage error Click raises while
parsing, from its type and fields, in the active language. They also show
a boolean flag without the value type that Typer's Rich help prints for every
option (``--debug <bool>``), as Typer's plain help and Click already do.
Their Rich help folds a help text that has no space to break at, such as a
Chinese sentence, instead of cutting it off.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from difflib import get_close_matches
from typing import TYPE_CHECKING

import typer
from typer import _click
from typer.core import TyperCommand, TyperGroup, TyperOption

from duckmkt.i18n import _

if TYPE_CHECKING:
    from rich.console import RenderableType

_UsageError = _click.exceptions.UsageError


class FlagOption(TyperOption):
    """A boolean flag option, whose help row shows no value type because it takes no value."""

    def display_type_rich(self, ctx: _click.Context) -> str | None:
        return None


def show_as_flag(param: _click.Parameter) -> None:
    """Make a boolean flag option a ``FlagOption``, and leave other parameters as they are."""
    # Typer creates every option as a TyperOption and offers no hook for
    # another class, so the instance's class is switched after the fact.
    if type(param) is TyperOption and param.is_bool_flag:
        param.__class__ = FlagOption


@contextmanager
def folding_help_text() -> Iterator[None]:
    """Make Typer's Rich help fold a help text that is wider than its column instead of cutting it off."""
    # Rich (15.0) wraps Text only at whitespace. A word wider than its table
    # cell is cut and ends in "…", because a table column's overflow defaults
    # to "ellipsis" and Typer 0.29 sets no overflow on the Texts of an option's
    # or a command's help. A Chinese sentence has no spaces, so all of it is
    # one such word. With overflow "fold", Rich breaks that word at the cell
    # edge, and English text still wraps at its spaces. Typer builds these
    # Texts in two module-level functions and offers no hook for them, so both
    # are wrapped while the help is written.
    # NOTE: a fold may start a line with a punctuation mark such as "。" or
    # "、", which CJK line-breaking rules avoid.

    # typer.rich_utils imports Rich, so it is imported here and not at the
    # top: importing the CLI then does not import Rich.
    from typer import rich_utils

    originals = {name: getattr(rich_utils, name) for name in ("_get_parameter_help", "_make_command_help")}
    for name, build in originals.items():
        setattr(rich_utils, name, _with_folding_texts(build))
    try:
        yield
    finally:
        for name, build in originals.items():
            setattr(rich_utils, name, build)


def _with_folding_texts(build: Callable[..., RenderableType]) -> Callable[..., RenderableType]:
    """Wrap ``build`` so that the Texts it returns, alone or in a Columns, fold instead of being cut."""
    from rich.columns import Columns
    from rich.text import Text

    def build_folding(**kwargs) -> RenderableType:
        renderable = build(**kwargs)
        parts = renderable.renderables if isinstance(renderable, Columns) else [renderable]
        for part in parts:
            if isinstance(part, Text) and part.overflow is None:
                part.overflow = "fold"
        return renderable

    return build_folding


class _LocalizedCommandMixin:
    """Usage line, --help text and parsing errors in the active language."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            show_as_flag(param)

    def get_help_option(self, ctx: _click.Context) -> TyperOption | None:
        option = super().get_help_option(ctx)
        if option is not None:
            show_as_flag(option)
            option.help = _("Show this message and exit.")
        return option

    def format_usage(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        pieces = self.collect_usage_pieces(ctx)
        formatter.write_usage(ctx.command_path, " ".join(pieces), prefix=_("Usage: "))

    def format_help(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        with folding_help_text():
            super().format_help(ctx, formatter)

    def parse_args(self, ctx: _click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except _UsageError as error:
            message = localized_usage_message(error)
            if message is None:
                raise
            raise _UsageError(message, ctx=error.ctx or ctx) from error


class LocalizedCommand(_LocalizedCommandMixin, TyperCommand):
    """A Typer command whose Click text follows the active language."""


class LocalizedGroup(_LocalizedCommandMixin, TyperGroup):
    """A Typer command group whose Click text follows the active language.

    It suggests the closest command for an unknown one itself, in the active
    language, instead of Typer appending an English "Did you mean ...?".
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs["suggest_commands"] = False
        super().__init__(*args, **kwargs)

    def resolve_command(self, ctx: _click.Context, args: list[str]):
        try:
            return super().resolve_command(ctx, args)
        except _UsageError as error:
            name = args[0] if args else ""
            # A name that looks like an option failed in parse_args, which
            # already gave the error its text.
            if not name or name.startswith("-") or self.get_command(ctx, name) is not None:
                raise
            matches = get_close_matches(name, self.list_commands(ctx))
            if not matches:
                raise
            message = _("No such command {name!r}. Did you mean {commands}?").format(
                name=name, commands=", ".join(repr(match) for match in matches)
            )
            raise _UsageError(message, ctx=error.ctx or ctx) from error


class LocalizedTyper(typer.Typer):
    """``typer.Typer`` whose groups and commands are ``LocalizedGroup`` and ``LocalizedCommand`` by default."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("cls", LocalizedGroup)
        super().__init__(**kwargs)

    def command(self, name: str | None = None, *, cls: type[TyperCommand] | None = None, **kwargs):
        return super().command(name, cls=cls or LocalizedCommand, **kwargs)


# --- Usage errors -------------------------------------------------------------

_EXTRA_ARGUMENTS = re.compile(r"Got unexpected extra argument\(s\) \((?P<arguments>.*)\)", re.DOTALL)


def localized_usage_message(error: _UsageError) -> str | None:
    """Return the message of a usage error that Click raised while parsing, in the active language.

    Returns None for an error this function does not know, such as the help
    page of a command called without arguments, which then keeps Click's text.
    """
    exceptions = _click.exceptions
    if isinstance(error, exceptions.MissingParameter):
        return _missing_parameter_message(error)
    if isinstance(error, exceptions.BadParameter):
        return _bad_parameter_message(error)
    if isinstance(error, exceptions.NoSuchOption):
        return _no_such_option_message(error)
    if isinstance(error, exceptions.BadOptionUsage):
        return _bad_option_usage_message(error)
    if type(error) is _UsageError:
        match = _EXTRA_ARGUMENTS.fullmatch(error.message)
        if match:
            return _("Got unexpected extra arguments: {arguments}.").format(arguments=match["arguments"])
    return None


def _missing_parameter_message(error: _click.exceptions.MissingParameter) -> str | None:
    param = error.param
    # A custom message, or the list of choices Typer adds for a choice
    # parameter, has no translation, so Click's text stays.
    if error.message or param is None or param.get_missing_message(ctx=error.ctx):
        return None
    name = _parameter_hint(error)
    if param.param_type_name == "argument":
        return _("Missing argument {name}.").format(name=name)
    if param.param_type_name == "option":
        return _("Missing option {name}.").format(name=name)
    return None


def _bad_parameter_message(error: _click.exceptions.BadParameter) -> str:
    reason = _value_error_reason(error) or error.message
    name = _parameter_hint(error)
    if name is None:
        return _("Invalid value: {reason}").format(reason=reason)
    return _("Invalid value for {name}: {reason}").format(name=name, reason=reason)


def _no_such_option_message(error: _click.exceptions.NoSuchOption) -> str:
    name = _escape(error.option_name)
    if error.possibilities:
        return _("No such option: {name}. Did you mean {options}?").format(name=name, options=", ".join(error.possibilities))
    return _("No such option: {name}").format(name=name)


def _bad_option_usage_message(error: _click.exceptions.BadOptionUsage) -> str | None:
    name = repr(error.option_name)
    # The parser words these two cases itself. Any other message stays as it is.
    if error.message == f"Option {name} requires an argument.":
        return _("Option {name} requires a value.").format(name=name)
    if error.message == f"Option {name} does not take a value.":
        return _("Option {name} does not take a value.").format(name=name)
    return None


def _parameter_hint(error: _click.exceptions.BadParameter) -> str | None:
    """Return how Click names the parameter of ``error``, for example '--limit' or 'db'."""
    if isinstance(error.param_hint, str):
        return error.param_hint
    if error.param_hint is not None:
        return " / ".join(repr(hint) for hint in error.param_hint)
    if error.param is not None:
        return error.param.get_error_hint()
    return None


def _value_error_reason(error: _click.exceptions.BadParameter) -> str | None:
    """Return why a value failed Typer's conversion (a Pydantic validation error), or None.

    Covers the failures the duckmkt options can produce: a number that does
    not parse and a value below an option's minimum (``--top``). Other
    reasons keep Pydantic's English text.
    """
    cause = error.__cause__
    details = getattr(cause, "errors", None)
    if not callable(details) or not details():
        return None
    first = details()[0]
    kind = first.get("type")
    value = first.get("input")
    limits = first.get("ctx") or {}
    if kind == "int_parsing":
        return _("{value!r} is not a whole number.").format(value=value)
    if kind == "float_parsing":
        return _("{value!r} is not a number.").format(value=value)
    if kind == "greater_than_equal" and "ge" in limits:
        return _("{value} is less than the minimum, {minimum}.").format(value=_escape(str(value)), minimum=limits["ge"])
    return None


def _escape(text: str) -> str:
    """Return ``text`` with terminal control characters written as \\xNN, as Click shows user input."""
    return re.sub(r"[\x00-\x1f\x7f-\x9f]", lambda match: f"\\x{ord(match[0]):02x}", text)
