"""PostgreSQL wire-protocol pieces of ``duckmkt serve`` that need no socket.

- ``ScramVerifier``: the server side of SCRAM-SHA-256 (RFC 5802 and RFC
  7677, without channel binding), the password method of PostgreSQL 10+.
- ``column_type``, ``encode_text`` and ``encode_binary``: DuckDB result types
  as PostgreSQL type OIDs, and values in the text or binary format of those types.
- ``decode_parameter``: a bound parameter sent by the client as a Python value.
- ``classify``: the statement policy (what a read-only endpoint accepts).

The message framing itself comes from pygwire.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import hashlib
import hmac
import json
import math
import re
import secrets
import struct
import uuid
from dataclasses import dataclass

import duckdb

# --- SCRAM-SHA-256 ---------------------------------------------------------

SCRAM_MECHANISM = "SCRAM-SHA-256"
SCRAM_ITERATIONS = 4096


class AuthenticationFailed(Exception):
    """The client's SCRAM messages or proof are invalid."""


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


class ScramVerifier:
    """Check SCRAM-SHA-256 proofs against one password.

    The salted password is derived once per server start, so a connection
    costs two HMACs instead of 4096 PBKDF2 rounds.
    """

    def __init__(self, password: str):
        # NOTE: the password is used as UTF-8 without SASLprep normalization,
        # which matches libpq for passwords in NFKC form (plain ASCII included).
        self.salt = secrets.token_bytes(16)
        salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), self.salt, SCRAM_ITERATIONS)
        self._stored_key = hashlib.sha256(_hmac(salted, b"Client Key")).digest()
        self._server_key = _hmac(salted, b"Server Key")

    def exchange(self) -> ScramExchange:
        return ScramExchange(self)


class ScramExchange:
    """One SCRAM conversation: ``first`` takes the client-first message, ``final`` the client-final."""

    def __init__(self, verifier: ScramVerifier):
        self._verifier = verifier
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""

    def first(self, client_first: bytes) -> bytes:
        """Return the server-first message for the client-first message."""
        text = client_first.decode("utf-8")
        header, _, bare = text.partition(",,") if text.startswith(("n,", "y,")) else ("", "", "")
        if not bare:
            # "p=..." requests channel binding, which needs TLS.
            raise AuthenticationFailed("unsupported GS2 header; channel binding is not available")
        attributes = dict(part.split("=", 1) for part in bare.split(",") if "=" in part)
        client_nonce = attributes.get("r", "")
        if not client_nonce:
            raise AuthenticationFailed("client-first message without a nonce")
        self._client_first_bare = bare
        self._nonce = client_nonce + base64.b64encode(secrets.token_bytes(18)).decode("ascii")
        salt = base64.b64encode(self._verifier.salt).decode("ascii")
        self._server_first = f"r={self._nonce},s={salt},i={SCRAM_ITERATIONS}"
        return self._server_first.encode("ascii")

    def final(self, client_final: bytes) -> bytes:
        """Verify the client proof and return the server-final message, or raise AuthenticationFailed."""
        text = client_final.decode("utf-8")
        without_proof, _, proof_part = text.rpartition(",p=")
        attributes = dict(part.split("=", 1) for part in without_proof.split(",") if "=" in part)
        if attributes.get("r") != self._nonce or not proof_part:
            raise AuthenticationFailed("nonce mismatch")
        try:
            proof = base64.b64decode(proof_part, validate=True)
        except ValueError as error:
            raise AuthenticationFailed("proof is not base64") from error

        auth_message = ",".join([self._client_first_bare, self._server_first, without_proof]).encode("utf-8")
        signature = _hmac(self._verifier._stored_key, auth_message)
        if len(proof) != len(signature):
            raise AuthenticationFailed("proof has the wrong length")
        client_key = bytes(a ^ b for a, b in zip(proof, signature))
        if not hmac.compare_digest(hashlib.sha256(client_key).digest(), self._verifier._stored_key):
            raise AuthenticationFailed("wrong password")
        server_signature = _hmac(self._verifier._server_key, auth_message)
        return b"v=" + base64.b64encode(server_signature)


# --- Types and values ------------------------------------------------------

BOOL, BYTEA, INT8, INT2, INT4, TEXT, JSON = 16, 17, 20, 21, 23, 25, 114
FLOAT4, FLOAT8, DATE, TIME, TIMESTAMP, TIMESTAMPTZ, INTERVAL, NUMERIC, UUID = (
    700, 701, 1082, 1083, 1114, 1184, 1186, 1700, 2950
)

_SIMPLE_TYPES = {
    "BOOLEAN": BOOL,
    "TINYINT": INT2,
    "SMALLINT": INT2,
    "UTINYINT": INT2,
    "INTEGER": INT4,
    "USMALLINT": INT4,
    "BIGINT": INT8,
    "UINTEGER": INT8,
    "HUGEINT": NUMERIC,
    "UBIGINT": NUMERIC,
    "UHUGEINT": NUMERIC,
    "VARINT": NUMERIC,
    "BIGNUM": NUMERIC,
    "FLOAT": FLOAT4,
    "DOUBLE": FLOAT8,
    "VARCHAR": TEXT,
    "BLOB": BYTEA,
    "DATE": DATE,
    "TIME": TIME,
    "TIMESTAMP": TIMESTAMP,
    "TIMESTAMP_S": TIMESTAMP,
    "TIMESTAMP_MS": TIMESTAMP,
    "TIMESTAMP_NS": TIMESTAMP,
    "TIMESTAMP WITH TIME ZONE": TIMESTAMPTZ,
    "INTERVAL": INTERVAL,
    "UUID": UUID,
    "JSON": JSON,
}

_EPOCH_DATE = dt.date(2000, 1, 1)
_EPOCH = dt.datetime(2000, 1, 1)


def column_type(duckdb_type: object) -> int:
    """Return the PostgreSQL type OID for a DuckDB type (a DuckDBPyType or its name).

    Nested types (STRUCT, MAP, LIST) are sent as JSON text.
    """
    name = str(duckdb_type)
    if name in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[name]
    if name.startswith("DECIMAL"):
        return NUMERIC
    if name.startswith("ENUM"):
        return TEXT
    if name.startswith(("STRUCT", "MAP", "UNION")) or name.endswith("]"):
        return JSON
    return TEXT


def _json_default(value: object) -> object:
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    return str(value)


def _text_float(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def _text_interval(value: dt.timedelta) -> str:
    seconds = value.seconds
    return f"{value.days} days {seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}.{value.microseconds:06d}"


def encode_text(value: object, oid: int) -> bytes:
    """Return ``value`` (not None) in the PostgreSQL text format of type ``oid``."""
    if oid == BOOL:
        text = "t" if value else "f"
    elif isinstance(value, float):
        text = _text_float(value)
    elif oid == JSON and not isinstance(value, str):
        text = json.dumps(value, default=_json_default, allow_nan=True)
    elif isinstance(value, bytes):
        text = "\\x" + value.hex()
    elif isinstance(value, dt.datetime):
        text = value.isoformat(sep=" ")
    elif isinstance(value, dt.timedelta):
        text = _text_interval(value)
    elif isinstance(value, (dt.date, dt.time)):
        text = value.isoformat()
    else:
        text = str(value)
    return text.encode("utf-8")


def encode_binary(value: object, oid: int) -> bytes:
    """Return ``value`` (not None) in the binary format of type ``oid``; raise ValueError for other types."""
    if oid == BOOL:
        return b"\x01" if value else b"\x00"
    if oid == INT2:
        return struct.pack("!h", value)
    if oid == INT4:
        return struct.pack("!i", value)
    if oid == INT8:
        return struct.pack("!q", value)
    if oid == FLOAT4:
        return struct.pack("!f", value)
    if oid == FLOAT8:
        return struct.pack("!d", value)
    if oid in (TEXT, JSON):
        return encode_text(value, oid)
    if oid == BYTEA:
        return bytes(value)
    if oid == DATE:
        return struct.pack("!i", (value - _EPOCH_DATE).days)
    if oid in (TIMESTAMP, TIMESTAMPTZ):
        naive = value.astimezone(dt.timezone.utc).replace(tzinfo=None) if value.tzinfo else value
        delta = naive - _EPOCH
        return struct.pack("!q", (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)
    raise ValueError(f"binary format of type OID {oid} is not supported; request the text format")


def decode_parameter(raw: bytes | None, oid: int, binary: bool) -> object:
    """Return a bound parameter as a Python value DuckDB can bind."""
    if raw is None:
        return None
    if binary:
        if oid == BOOL:
            return raw != b"\x00"
        if oid == INT2:
            return struct.unpack("!h", raw)[0]
        if oid == INT4:
            return struct.unpack("!i", raw)[0]
        if oid == INT8:
            return struct.unpack("!q", raw)[0]
        if oid == FLOAT4:
            return struct.unpack("!f", raw)[0]
        if oid == FLOAT8:
            return struct.unpack("!d", raw)[0]
        if oid == BYTEA:
            return bytes(raw)
        if oid in (TEXT, JSON, 1043, 0):
            return bytes(raw).decode("utf-8")
        raise ValueError(f"binary parameters of type OID {oid} are not supported; send them as text")
    text = bytes(raw).decode("utf-8")
    if oid in (INT2, INT4, INT8):
        return int(text)
    if oid in (FLOAT4, FLOAT8):
        return float(text)
    if oid == NUMERIC:
        return decimal.Decimal(text)
    if oid == BOOL:
        return text.lower() in ("t", "true", "1", "yes", "on")
    if oid == UUID:
        return uuid.UUID(text)
    return text


# --- Statement policy ------------------------------------------------------

# Parameters that drivers set on connect; they only change how the client
# reads results, which the server already sends in one fixed form.
CLIENT_PARAMETERS = {
    "application_name",
    "client_encoding",
    "client_min_messages",
    "datestyle",
    "extra_float_digits",
    "intervalstyle",
    "lc_messages",
    "statement_timeout",
    "standard_conforming_strings",
    "bytea_output",
    "timezone",
    "idle_in_transaction_session_timeout",
    "lock_timeout",
    "search_path",
    "jit",
}

# What SHOW returns for PostgreSQL settings DuckDB does not have.
SHOW_VALUES = {
    "transaction isolation level": "serializable",
    "transaction_isolation": "serializable",
    "server_version": "16.0",
    "server_version_num": "160000",
    "standard_conforming_strings": "on",
    "client_encoding": "UTF8",
    "server_encoding": "UTF8",
    "datestyle": "ISO, MDY",
    "timezone": "UTC",
    "integer_datetimes": "on",
    "max_identifier_length": "63",
    "default_transaction_read_only": "on",
    "transaction_read_only": "on",
}

_SET = re.compile(r"^\s*set\s+(?:session\s+|local\s+)?([a-z_][a-z0-9_.]*)\s*(?:=|\bto\b)\s*(.*?)\s*;?\s*$", re.I | re.S)
_SET_TRANSACTION = re.compile(r"^\s*set\s+(?:session\s+characteristics\s+as\s+)?transaction\b", re.I)
_SHOW = re.compile(r"^\s*show\s+(.+?)\s*;?\s*$", re.I | re.S)

# Statements that read files or the network, load code or change other
# databases: rejected in every mode (external access is also disabled).
_NEVER = {
    duckdb.StatementType.ATTACH,
    duckdb.StatementType.DETACH,
    duckdb.StatementType.COPY,
    duckdb.StatementType.COPY_DATABASE,
    duckdb.StatementType.EXPORT,
    duckdb.StatementType.LOAD,
    duckdb.StatementType.EXTENSION,
}
_READ_ONLY_ALLOWED = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN, duckdb.StatementType.TRANSACTION}


@dataclass(frozen=True)
class Rejected(Exception):
    """A statement the policy rejects, with its SQLSTATE."""

    sqlstate: str
    message: str


@dataclass(frozen=True)
class Answer:
    """A reply the server gives itself, without DuckDB: a command tag and optional one-row result."""

    tag: str
    column: str | None = None
    value: str | None = None


# PostgreSQL-only pieces of the catalogue queries psql and drivers send,
# rewritten into what DuckDB's pg_catalog emulation accepts.
_REWRITES = (
    (re.compile(r"\s+COLLATE\s+pg_catalog\.(?:default|\"default\"|\"C\")", re.I), ""),
    (re.compile(r"pg_catalog\.pg_get_userbyid\([^()]*\)", re.I), "'duckdb'"),
    # psql matches names with OPERATOR(pg_catalog.~) against anchored patterns.
    (re.compile(r"OPERATOR\(pg_catalog\.(~|!~|=|<>)\)", re.I), r"\1"),
)


def rewrite(sql: str) -> str:
    """Return ``sql`` with the PostgreSQL-only catalogue constructs of ``_REWRITES`` replaced."""
    for pattern, replacement in _REWRITES:
        sql = pattern.sub(replacement, sql)
    return sql


def intercept(sql: str, read_only: bool) -> Answer | None:
    """Return the server's own answer to a PostgreSQL session statement, or None to pass ``sql`` on.

    Raises Rejected for a SET that a read-only endpoint does not allow.
    """
    if _SET_TRANSACTION.match(sql):
        return Answer("SET")
    match = _SET.match(sql)
    if match:
        name = match.group(1).lower()
        if name in CLIENT_PARAMETERS:
            return Answer("SET")
        if read_only:
            raise Rejected("25006", f"SET {name} is not allowed: this endpoint is read-only")
        return None
    match = _SHOW.match(sql)
    if match:
        name = re.sub(r"\s+", " ", match.group(1).lower())
        if name in SHOW_VALUES:
            return Answer("SHOW", column=name.replace(" ", "_"), value=SHOW_VALUES[name])
    return None


def check_statement(statement: duckdb.Statement, read_only: bool) -> None:
    """Raise Rejected when ``statement`` is not allowed on this endpoint."""
    kind = statement.type
    if kind in _NEVER:
        raise Rejected("42501", f"{kind.name} statements are not allowed on this endpoint")
    if read_only and kind not in _READ_ONLY_ALLOWED:
        raise Rejected("25006", f"{kind.name} is not allowed: this endpoint is read-only; start it with --read-write to allow writes")


def command_tag(statement: duckdb.Statement, n_rows: int) -> str:
    """Return the CommandComplete tag of ``statement`` after it returned ``n_rows`` (or changed that many)."""
    kind = statement.type
    if kind in (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN):
        return f"SELECT {n_rows}"
    if kind == duckdb.StatementType.INSERT:
        return f"INSERT 0 {n_rows}"
    if kind in (duckdb.StatementType.UPDATE, duckdb.StatementType.DELETE):
        return f"{kind.name} {n_rows}"
    if kind == duckdb.StatementType.TRANSACTION:
        word = statement.query.strip().split()[0].upper() if statement.query.strip() else "BEGIN"
        return {"START": "BEGIN", "END": "COMMIT", "ABORT": "ROLLBACK"}.get(word, word)
    return kind.name


_SQLSTATES = (
    (duckdb.ParserException, "42601"),
    (duckdb.CatalogException, "42P01"),
    (duckdb.BinderException, "42703"),
    (duckdb.PermissionException, "42501"),
    (duckdb.ConversionException, "22018"),
    (duckdb.ConstraintException, "23000"),
    (duckdb.TransactionException, "25000"),
    (duckdb.InvalidInputException, "22023"),
    (duckdb.OutOfRangeException, "22003"),
)


def sqlstate(error: Exception) -> str:
    """Return the PostgreSQL SQLSTATE closest to a DuckDB error."""
    for kind, code in _SQLSTATES:
        if isinstance(error, kind):
            return code
    return "XX000"
