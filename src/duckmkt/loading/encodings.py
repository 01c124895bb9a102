"""Detect and apply the text encoding of a source file.

Detection order: a byte-order mark decides; bytes that decode as UTF-8 are
UTF-8; otherwise GB18030 (a superset of GBK and GB2312) and Windows-1252 /
Latin-1 are scored against each other, and charset-normalizer decides only
when neither fits. GB18030 and Latin-1 can both decode many byte strings, so
whenever the rejected one of the two would also fit, the result carries a
warning that names both.
"""

from __future__ import annotations

import codecs
import logging
import re
from dataclasses import dataclass, field

from charset_normalizer import from_bytes

from duckmkt.errors import InputFileError
from duckmkt.i18n import _

logger = logging.getLogger(__name__)

# Python codec names (codecs.lookup(...).name) of the two families.
GB_FAMILY = ("gb18030", "gbk", "gb2312")
LATIN_FAMILY = ("iso8859-1", "cp1252", "iso8859-15")

# Scoring reads at most this many bytes; a file's first megabyte shows its encoding.
SAMPLE_BYTES = 1 << 20
_HIGH_BYTE_RUN = re.compile(rb"[\x80-\xff]+")

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


@dataclass
class DecodedText:
    """The text of a file, the encoding used and how sure the choice is (0 to 1)."""

    text: str
    encoding: str
    confidence: float
    warnings: list[str] = field(default_factory=list)


def canonical_encoding(name: str) -> str:
    """Return Python's codec name for ``name``; raise InputFileError for an unknown one."""
    try:
        return codecs.lookup(name).name
    except LookupError as error:
        raise InputFileError(
            _("Unknown encoding {encoding!r}; use a name such as utf-8, gb18030 or latin-1.").format(encoding=name)
        ) from error


def _family(encoding: str) -> str | None:
    encoding = canonical_encoding(encoding)
    if encoding in GB_FAMILY:
        return "gb"
    if encoding in LATIN_FAMILY:
        return "latin"
    return None


def gb_score(data: bytes) -> float:
    """Return the share of multi-byte characters that are common (GB2312) Chinese; 0 if GB18030 fails."""
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        return 0.0
    wide = [char for char in text if ord(char) > 0x7F]
    if not wide:
        return 0.0
    common = 0
    for char in wide:
        try:
            char.encode("gb2312")
            common += 1
        except UnicodeEncodeError:
            pass
    return common / len(wide)


def latin_score(data: bytes) -> float:
    """Return the share of non-ASCII byte runs that read as accented letters inside a Latin word.

    Latin-1 text has accented letters (bytes 0xC0 to 0xFF) next to ASCII
    letters ("Müller"). Chinese in GBK also uses bytes 0xA1 to 0xBF, which
    Latin-1 reads as symbols such as ± and ¿, and its runs mostly sit between
    digits, delimiters or line breaks.
    """
    runs = list(_HIGH_BYTE_RUN.finditer(data))
    if not runs:
        return 0.0
    in_word = 0
    for match in runs:
        before = data[match.start() - 1 : match.start()]
        after = data[match.end() : match.end() + 1]
        touches_letter = before.isalpha() or after.isalpha()
        if touches_letter and match.group().decode("latin-1").isalpha():
            in_word += 1
    return in_word / len(runs)


def _strict_decode(data: bytes, encoding: str, file_name: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise InputFileError(
            _("{file} is not valid {encoding}: byte {position} (line {line}) cannot be decoded. "
              "Pass the file's encoding, for example --encoding gb18030 or --encoding latin-1.").format(
                file=file_name, encoding=encoding, position=error.start, line=line
            )
        ) from error


def _cross_check(sample: bytes, chosen: str, file_name: str) -> list[str]:
    """Warn when the other one of GB18030 and Latin-1 would also read the file plausibly."""
    family = _family(chosen)
    if family == "latin" and gb_score(sample) >= 0.5:
        return [
            _("{file} was read as {encoding}, but its bytes are also valid GB18030 Chinese text; "
              "if the text looks garbled, load it again with --encoding gb18030.").format(file=file_name, encoding=chosen)
        ]
    if family == "gb" and latin_score(sample) >= 0.3:
        return [
            _("{file} was read as {encoding}, but its bytes also look like Latin-1 text; "
              "if the text looks garbled, load it again with --encoding latin-1.").format(file=file_name, encoding=chosen)
        ]
    return []


def detect_encoding(data: bytes) -> tuple[str, float]:
    """Return the encoding of ``data`` and a confidence between 0 and 1."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding, 1.0
    sample = data[:SAMPLE_BYTES]
    try:
        data.decode("utf-8")
        return "utf-8", 1.0
    except UnicodeDecodeError:
        pass

    gb = gb_score(sample)
    latin = latin_score(sample)
    # A handful of non-ASCII characters is weak evidence either way.
    evidence = min(1.0, len(_HIGH_BYTE_RUN.findall(sample)) / 5)
    if max(gb, latin) >= 0.5:
        if gb >= latin:
            return "gb18030", round(gb * (1 - latin / 2) * evidence, 3)
        try:
            data.decode("cp1252")
            latin_encoding = "cp1252"
        except UnicodeDecodeError:
            latin_encoding = "latin-1"
        return latin_encoding, round(latin * (1 - gb / 2) * evidence, 3)

    best = from_bytes(sample).best()
    if best is None:
        return "latin-1", 0.0
    return canonical_encoding(best.encoding), round(1.0 - best.chaos, 3)


def decode_bytes(data: bytes, file_name: str, encoding: str | None = None) -> DecodedText:
    """Decode a file's bytes with ``encoding``, or with the detected one when it is None."""
    sample = data[:SAMPLE_BYTES]
    if encoding is not None:
        chosen = canonical_encoding(encoding)
        if chosen == "utf_8" and data.startswith(codecs.BOM_UTF8):
            chosen = "utf-8-sig"
        text = _strict_decode(data, chosen, file_name)
        detected, confidence = detect_encoding(data)
        warnings = []
        if {_family(chosen), _family(detected)} == {"gb", "latin"}:
            warnings.append(
                _("{file} was read as {encoding} as requested, but it looks like {detected} (confidence {confidence:.2f}).").format(
                    file=file_name, encoding=chosen, detected=detected, confidence=confidence
                )
            )
        else:
            warnings += _cross_check(sample, chosen, file_name)
        return DecodedText(text, chosen, 1.0, warnings)

    detected, confidence = detect_encoding(data)
    text = _strict_decode(data, detected, file_name)
    warnings = _cross_check(sample, detected, file_name)
    if confidence < 0.8:
        warnings.append(
            _("The encoding of {file} was detected as {encoding} with low confidence ({confidence:.2f}); "
              "check the text and pass --encoding if it is wrong.").format(file=file_name, encoding=detected, confidence=confidence)
        )
    logger.info("%s: encoding %s (confidence %.2f)", file_name, detected, confidence)
    return DecodedText(text, detected, confidence, warnings)
