"""English and Simplified Chinese messages through gettext catalogs."""

from __future__ import annotations

import gettext
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from duckmkt import i18n

SOURCE_DIR = Path(i18n.__file__).parent
PO_FILE = i18n.LOCALE_DIR / "zh_CN" / "LC_MESSAGES" / "duckmkt.po"
MO_FILE = PO_FILE.with_suffix(".mo")
CJK = re.compile(r"[\u4e00-\u9fff]")

# Typer's own strings that go through the global gettext domain.
TYPER_MESSAGES = ("Options", "Commands", "Arguments", "[default: {}]", "[required]", "Error")

# Latin text that may stay in a Chinese translation: placeholders, %-formats,
# names with '_', '.', '-' or '/' (codes, SQL names, options, paths),
# upper-case words (SQL, ONNX, DB) and the keywords of a quoted SQL query.
CODE_OR_NAME = re.compile(r"\{[^}]*\}|%[-.0-9]*[sdfgr]|[\w.\-/]*[_./\-][\w.\-/]*|\b[A-Z0-9]+\b|\b(?:select|from)\b")


def source_messages() -> set[str]:
    keywords = {"_": None, "N_": None, "ngettext": (1, 2)}
    messages = set()
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
        str(SOURCE_DIR), method_map=[("**.py", "python")], keywords=keywords
    ):
        messages.add(message[0] if isinstance(message, tuple) else message)
    return messages


def chinese_catalog():
    with PO_FILE.open("rb") as handle:
        return read_po(handle, locale="zh_CN")


def test_every_message_has_chinese_translation():
    catalog = chinese_catalog()
    missing = sorted(
        message
        for message in source_messages() | set(TYPER_MESSAGES)
        if message not in catalog or not catalog[message].string or catalog[message].fuzzy
    )

    assert missing == []


def test_typer_messages_are_extracted():
    assert set(TYPER_MESSAGES) <= set(i18n.TYPER_MESSAGES)
    assert set(i18n.TYPER_MESSAGES) <= source_messages()


def test_catalog_has_no_obsolete_messages():
    catalog_ids = {message.id for message in chinese_catalog() if message.id}

    assert sorted(catalog_ids - source_messages()) == []


def test_translations_are_chinese():
    english = [
        message.id
        for message in chinese_catalog()
        if message.id
        and message.string
        and not CJK.search(message.string)
        and re.search(r"[A-Za-z]{2,}", CODE_OR_NAME.sub(" ", message.string))
    ]

    assert english == []


def test_translations_keep_placeholders():
    placeholder = re.compile(r"\{[a-z_]*(?:[:!][^}]*)?\}")
    catalog = chinese_catalog()
    broken = [
        message.id
        for message in catalog
        if message.id and message.string and sorted(placeholder.findall(message.id)) != sorted(placeholder.findall(message.string))
    ]

    assert broken == []


def test_compiled_catalog_matches_po():
    compiled = gettext.GNUTranslations(MO_FILE.open("rb"))
    stale = [message.id for message in chinese_catalog() if message.id and compiled.gettext(message.id) != message.string]

    assert stale == []


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"LANG": "zh_CN.UTF-8"}, "zh"),
        ({"LANG": "zh_TW.UTF-8"}, "zh"),
        ({"LANG": "en_US.UTF-8"}, "en"),
        ({"LC_ALL": "zh_CN.UTF-8", "LANG": "en_US.UTF-8"}, "zh"),
        ({"LC_ALL": "C", "LANG": "zh_CN.UTF-8"}, "en"),
        ({"LC_MESSAGES": "zh_SG.UTF-8"}, "zh"),
        ({}, "en"),
    ],
)
def test_detect_language(environ, expected):
    assert i18n.detect_language(environ) == expected


def test_set_language_switches_catalog():
    try:
        i18n.set_language("zh")
        chinese = i18n._("Error: {message}")
        i18n.set_language("en")
        english = i18n._("Error: {message}")
    finally:
        i18n.set_language("en")

    assert CJK.search(chinese)
    assert english == "Error: {message}"


def test_set_language_rejects_unknown():
    with pytest.raises(ValueError, match="fr"):
        i18n.set_language("fr")
