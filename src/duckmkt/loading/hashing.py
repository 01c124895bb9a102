"""Keyed hashing of customer ids for ``duckmkt load --hash-ids``.

Each customer id is replaced by the hex HMAC-SHA256 of its normalised text
('17850.0' and '17850' give the same hash), so one key gives the same hash
for a customer in every record kind and every load. The key comes from the
environment variable ``DUCKMKT_ID_HASH_KEY`` or a key file; it is never
written to the database, the load log or the logs.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from duckmkt.errors import InputFileError
from duckmkt.i18n import _
from duckmkt.loading.readers import SourceTable
from duckmkt.loading.values import convert_id

KEY_ENVIRONMENT_VARIABLE = "DUCKMKT_ID_HASH_KEY"
# RFC 2104, section 3, discourages HMAC keys shorter than the hash output,
# which is 32 bytes for SHA-256.
MIN_KEY_BYTES = 32


def read_id_key(key_file: str | Path | None = None) -> bytes:
    """Return the hashing key from ``key_file``, else from ``DUCKMKT_ID_HASH_KEY``.

    A trailing newline of the file is dropped. Raises InputFileError when no
    key is given, the file is unreadable or the key is shorter than 32 bytes.
    """
    if key_file is not None:
        try:
            key = Path(key_file).read_bytes().rstrip(b"\r\n")
        except OSError as error:
            raise InputFileError(
                _("The id key file {path} is unreadable: {error}; give a readable file with --id-key-file.").format(
                    path=key_file, error=error.strerror or error
                )
            ) from error
        source = str(key_file)
    else:
        key = os.environ.get(KEY_ENVIRONMENT_VARIABLE, "").encode("utf-8")
        source = KEY_ENVIRONMENT_VARIABLE
        if not key:
            raise InputFileError(
                _(
                    "Hashing customer ids needs a key: set the environment variable {variable} or give --id-key-file FILE. "
                    "Keep the key outside the database, and use the same key for every load."
                ).format(variable=KEY_ENVIRONMENT_VARIABLE)
            )
    if len(key) < MIN_KEY_BYTES:
        raise InputFileError(
            _("The id key in {source} has {length} bytes; use at least {minimum} random bytes.").format(
                source=source, length=len(key), minimum=MIN_KEY_BYTES
            )
        )
    return key


def hash_id(key: bytes, text: str) -> str:
    """Return the hex HMAC-SHA256 of ``text`` under ``key``."""
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def hashing_id_converter(key: bytes) -> Callable[[str], tuple[str | None, str | None]]:
    """Return ``convert_id`` followed by hashing of the accepted id."""

    def convert(text: str) -> tuple[str | None, str | None]:
        value, reason = convert_id(text)
        return (hash_id(key, value) if value is not None else None), reason

    return convert


def hash_id_column(table: SourceTable, column: str, key: bytes, null_values: tuple[str, ...]) -> SourceTable:
    """Return ``table`` with the id text in ``column`` hashed, for copies of the source row.

    Rejected rows keep their source text and customers keep unmapped columns
    as attributes; both are built from this table so no raw id is stored.
    An id the loader accepts gets the same hash as the loaded value; one it
    rejects is hashed as written. A malformed row (wrong number of fields)
    cannot be split into columns, so its text is dropped.
    """
    original = table.frame[column]
    distinct = [text for text in original.drop_nulls().unique().to_list() if text.strip() not in null_values]
    hashed = []
    for text in distinct:
        value, _reason = convert_id(text.strip())
        hashed.append(hash_id(key, value if value is not None else text))
    replaced = original.replace(distinct, hashed) if distinct else original
    frame = table.frame.with_columns(replaced.alias(column))
    malformed = [replace(row, text=None) for row in table.malformed]
    return replace(table, frame=frame, malformed=malformed)

