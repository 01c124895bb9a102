"""Message translation with the standard gettext machinery.

The catalogs live in ``duckmkt/locale/<lang>/LC_MESSAGES/duckmkt.mo`` and are
compiled from the ``.po`` files with Babel (``make catalogs``). English is the
source language, so a missing catalog falls back to the English text.
"""

from __future__ import annotations

import gettext
import os
from collections.abc import Mapping
from pathlib import Path

DOMAIN = "duckmkt"
LOCALE_DIR = Path(__file__).parent / "locale"
SUPPORTED_LANGUAGES = ("en", "zh")

# gettext folder name of each supported language.
_CATALOG_NAMES = {"en": "en", "zh": "zh_CN"}

_translation: gettext.NullTranslations = gettext.NullTranslations()
_language = "en"


def detect_language(environ: Mapping[str, str] | None = None) -> str:
    """Return 'zh' or 'en' from LC_ALL, LC_MESSAGES or LANG, in that order.

    Any ``zh_*`` locale selects Chinese; anything else, or no setting, English.
    """
    environ = os.environ if environ is None else environ
    for variable in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(variable, "")
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"


def set_language(language: str | None = None) -> str:
    """Activate the catalog for ``language`` ('en' or 'zh'); None detects it.

    Returns the language now in use.
    """
    global _translation, _language

    language = detect_language() if language is None else language.lower()
    if language.startswith("zh"):
        language = "zh"
    if language not in SUPPORTED_LANGUAGES:
        allowed = ", ".join(SUPPORTED_LANGUAGES)
        raise ValueError(_("Unsupported language {language!r}; use one of: {allowed}.").format(language=language, allowed=allowed))

    _translation = gettext.translation(
        DOMAIN,
        localedir=str(LOCALE_DIR),
        languages=[_CATALOG_NAMES[language]],
        fallback=True,
    )
    _language = language
    return language


def get_language() -> str:
    """Return the language in use, 'en' or 'zh'."""
    return _language


def _(message: str) -> str:
    """Translate ``message`` into the active language."""
    return _translation.gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """Translate a message whose form depends on the count ``n``."""
    return _translation.ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark ``message`` for extraction without translating it yet."""
    return message


# Typer's own messages (typer/core.py and typer/rich_utils.py of Typer 0.29),
# which Typer translates through the global gettext domain that
# duckmkt.cli.activate_language binds to this catalog. Listing them here puts
# them into the extracted template. Click's usage line and parameter errors
# ("Usage:", "Missing argument ...") are literals in Typer's vendored Click;
# duckmkt.commands.localized writes them through _() instead.
TYPER_MESSAGES = (
    N_("Options"),
    N_("Commands"),
    N_("Arguments"),
    N_("Error"),
    N_("[default: {}]"),
    N_("[env var: {}]"),
    N_("[required]"),
    N_("(deprecated) "),
    N_("Aborted."),
    N_("Aborted!"),
    N_("Try [blue]'{command_path} {help_option}'[/] for help."),
    N_("(dynamic)"),
    N_("default: {default}"),
    N_("required"),
    N_("env var: {var}"),
    N_("Missing command."),
    N_("No such command {name!r}."),
)


set_language()
