"""load_file on bad input: random bytes, broken CSV, odd encodings, and a value round trip.

Every outcome must be a DuckmktError, or rows accounted for in the raw table
and raw.rejected_rows. A loaded value must equal its source text after the
normalisation: stripped, '17850.0' ids as '17850', numbers as written and
dates as ISO 8601.
"""

from __future__ import annotations

import csv
import io
import tempfile
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from duckmkt.database import connect_database
from duckmkt.loading.values import convert_id
from duckmkt.errors import DuckmktError, InputFileError, MappingError
from duckmkt.loading import load_file

HEADER = ["customer_id", "order_id", "ordered_at", "product_id", "quantity", "unit_price", "description", "country"]
BOUNDED = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def fresh_connection() -> duckdb.DuckDBPyConnection:
    return connect_database(":memory:")


def load_bytes(data: bytes, name: str = "orders.csv", **options):
    """Load ``data`` as a file into a new in-memory database; return (connection, report or error)."""
    con = fresh_connection()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        try:
            return con, load_file(con, path, **options)
        except DuckmktError as error:
            return con, error


def row_counts(con) -> tuple[int, int]:
    loaded = con.execute("select count(*) from raw.order_lines").fetchall()[0][0]
    rejected = con.execute("select count(*) from raw.rejected_rows").fetchall()[0][0]
    return loaded, rejected


def assert_accounted(con, outcome) -> None:
    """A report accounts for every row it read; an error leaves nothing behind."""
    loaded, rejected = row_counts(con)
    if isinstance(outcome, DuckmktError):
        assert str(outcome)
        assert (loaded, rejected) == (0, 0)
    else:
        assert loaded == outcome.n_rows_loaded
        assert rejected == outcome.n_rows_rejected
        assert outcome.n_rows_loaded + outcome.n_rows_rejected + outcome.n_rows_already_loaded == outcome.n_rows_read


@BOUNDED
@given(data=st.binary(max_size=2000))
# A lone quote once ended in StopIteration instead of an InputFileError.
@example(data=b'"')
@example(data=b'\n"\n')
def test_load_file_random_bytes(data):
    con, outcome = load_bytes(data)
    assert_accounted(con, outcome)


@BOUNDED
@given(body=st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=600))
def test_load_file_random_text_after_header(body):
    con, outcome = load_bytes((",".join(HEADER) + "\n" + body).encode("utf-8"))
    assert_accounted(con, outcome)


# Field text without characters that a text file cannot carry as data: the
# loader reads lines, so NUL and the Unicode line separators (which Python's
# str.splitlines breaks on) are excluded, and the CSV writer quotes the rest.
FIELD_TEXT = st.text(
    alphabet=st.characters(
        blacklist_categories=["Cs", "Cc", "Zl", "Zp"], blacklist_characters="\x85"
    )
    | st.sampled_from([",", '"', ";", "\t", "|", " ", "'", "\n"]),
    max_size=40,
)
ORDER_ROW = st.fixed_dictionaries(
    {
        "customer_id": st.integers(10000, 99999).map(str) | st.integers(10000, 99999).map(lambda n: f"{n}.0"),
        "order_id": st.integers(500000, 599999).map(str),
        "ordered_at": st.datetimes(min_value=datetime(2009, 1, 1), max_value=datetime(2012, 12, 31)).map(
            lambda moment: moment.replace(microsecond=0).strftime("%Y-%m-%d %H:%M:%S")
        ),
        "product_id": st.text(alphabet="ABCDEFGH0123456789", min_size=1, max_size=8),
        "quantity": st.integers(-1000, 100000).map(str),
        "unit_price": st.decimals(min_value=0, max_value=100000, places=2, allow_nan=False).map(str),
        "description": FIELD_TEXT,
        "country": FIELD_TEXT,
    }
)


def normalised(row: dict[str, str]) -> dict[str, str | None]:
    """Return what raw.order_lines must hold for a source row: the documented normalisation."""
    expected: dict[str, str | None] = {}
    for name, text in row.items():
        value = text.strip()
        if name == "customer_id" and value.endswith(".0"):
            value = value[: -len(".0")]
        expected[name] = value or None
    return expected


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(ORDER_ROW, min_size=1, max_size=30))
def test_load_file_values_round_trip(rows):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HEADER, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)

    # The delimiter is given because a column of random text may split more
    # evenly on another delimiter, which the sniffer cannot tell apart.
    con, outcome = load_bytes(buffer.getvalue().encode("utf-8"), delimiter=",")
    assert not isinstance(outcome, DuckmktError), outcome
    assert_accounted(con, outcome)

    stored = con.execute(f"select source_line, {', '.join(HEADER)} from raw.order_lines order by source_line").fetchall()
    rejected_lines = {line for (line,) in con.execute("select source_line from raw.rejected_rows").fetchall()}
    # csv.DictWriter may spread a row over several lines (quoted newlines), so
    # rows are matched in order rather than by line number.
    assert len(stored) + len(rejected_lines) == len(rows)
    # Rows with an id in scientific notation are rejected (invalid_id), so they
    # are left out of the rows to compare.
    accepted = [
        row
        for row in rows
        if normalised(row)["customer_id"] is not None
        and all(convert_id(row[name].strip())[1] is None for name in ("customer_id", "order_id", "product_id"))
    ]
    for source, (_line, *values) in zip(accepted, stored):
        assert dict(zip(HEADER, values)) == normalised(source)


def test_load_file_empty_file_raises():
    con, outcome = load_bytes(b"")
    assert isinstance(outcome, InputFileError)
    assert "empty" in str(outcome)


def test_load_file_blank_lines_only_raises():
    con, outcome = load_bytes(b"\n\n  \n")
    assert isinstance(outcome, InputFileError)
    assert "no header line" in str(outcome)


def test_load_file_header_only_loads_nothing():
    con, outcome = load_bytes((",".join(HEADER) + "\n").encode())
    assert not isinstance(outcome, DuckmktError), outcome
    assert outcome.n_rows_read == 0
    assert row_counts(con) == (0, 0)


def test_load_file_unterminated_quote_rejected():
    text = ",".join(HEADER) + "\n" + '17850,536365,2010-12-01 08:26:00,85123A,6,2.55,"WHITE HANGING,United Kingdom\n'
    text += "17851,536366,2010-12-01 08:28:00,71053,6,3.39,LANTERN,United Kingdom\n"
    con, outcome = load_bytes(text.encode())

    assert_accounted(con, outcome)
    # The open quote would swallow the rest of the file into one field. Only
    # its line is rejected, and the next line is read as its own record.
    reasons = con.execute("select source_line, reason from raw.rejected_rows").fetchall()
    assert reasons == [(2, "unclosed_quote")]
    assert con.execute("select order_id from raw.order_lines").fetchall() == [("536366",)]


def test_load_file_quote_inside_unquoted_field():
    text = ",".join(HEADER) + "\n" + '17850,536365,2010-12-01 08:26:00,85123A,6,2.55,12" RULER,United Kingdom\n'
    con, outcome = load_bytes(text.encode())

    assert_accounted(con, outcome)
    assert con.execute("select description from raw.order_lines").fetchall() == [('12" RULER',)]


def test_load_file_huge_field_kept_whole():
    description = "x" * 5_000_000
    text = ",".join(HEADER) + "\n" + f"17850,536365,2010-12-01 08:26:00,85123A,6,2.55,{description},United Kingdom\n"
    con, outcome = load_bytes(text.encode())

    assert_accounted(con, outcome)
    assert con.execute("select length(description) from raw.order_lines").fetchall() == [(5_000_000,)]


def test_load_file_missing_column_names_it():
    header = [name for name in HEADER if name != "unit_price"]
    text = ",".join(header) + "\n" + "17850,536365,2010-12-01 08:26:00,85123A,6,WHITE,United Kingdom\n"
    con, outcome = load_bytes(text.encode())

    assert isinstance(outcome, MappingError)
    assert row_counts(con) == (0, 0)


def test_load_file_doubled_mapped_column_raises():
    header = HEADER + ["customer_id"]
    text = ",".join(header) + "\n" + "17850,536365,2010-12-01 08:26:00,85123A,6,2.55,WHITE,United Kingdom,99999\n"
    con, outcome = load_bytes(text.encode())

    assert isinstance(outcome, MappingError)
    assert "customer_id" in str(outcome)
    assert "more than once" in str(outcome)
    assert row_counts(con) == (0, 0)


def test_load_file_doubled_unmapped_column_loads():
    header = HEADER + ["note", "note"]
    text = ",".join(header) + "\n" + "17850,536365,2010-12-01 08:26:00,85123A,6,2.55,WHITE,United Kingdom,a,b\n"
    con, outcome = load_bytes(text.encode())

    assert not isinstance(outcome, DuckmktError), outcome
    assert row_counts(con) == (1, 0)


@pytest.mark.parametrize(
    ("encoding", "declared"),
    [
        ("utf-16", None),
        ("gb18030", None),
        ("latin-1", None),
        ("utf-8-sig", None),
        ("latin-1", "utf-8"),
        ("gb18030", "ascii"),
    ],
)
def test_load_file_encodings(encoding, declared):
    written = "Crème brûlée" if encoding == "latin-1" else "Crème brûlée 奶油"
    text = ",".join(HEADER) + "\n" + f"17850,536365,2010-12-01 08:26:00,85123A,6,2.55,{written},Éire\n"
    con, outcome = load_bytes(text.encode(encoding), encoding=declared)

    assert_accounted(con, outcome)
    if not isinstance(outcome, DuckmktError):
        # Whatever encoding was detected, a loaded value is either the text
        # as written or the load carries a warning about the guess.
        [(description,)] = con.execute("select description from raw.order_lines").fetchall()
        assert description == written or outcome.warnings, (description, outcome.warnings)


def test_load_file_invalid_utf8_declared_raises():
    text = ",".join(HEADER) + "\n" + "17850,536365,2010-12-01 08:26:00,85123A,6,2.55,Crème,Éire\n"
    con, outcome = load_bytes(text.encode("latin-1"), encoding="utf-8")

    assert isinstance(outcome, InputFileError)
    assert "utf-8" in str(outcome).lower()
    assert row_counts(con) == (0, 0)


@pytest.mark.parametrize(
    ("field", "text", "reason"),
    [
        ("quantity", "1e400", "invalid_number"),
        ("quantity", "0.1000000000000000055", "inexact_number"),
        ("unit_price", "NaN", "invalid_number"),
        ("unit_price", "inf", "invalid_number"),
        ("customer_id", "1.785E+04", "invalid_id"),
        ("ordered_at", "2010-13-45 99:00:00", "invalid_date"),
    ],
)
def test_load_file_bad_value_rejected_not_changed(field, text, reason):
    row = dict(zip(HEADER, ["17850", "536365", "2010-12-01 08:26:00", "85123A", "6", "2.55", "WHITE", "United Kingdom"]))
    row[field] = text
    con, outcome = load_bytes((",".join(HEADER) + "\n" + ",".join(row.values()) + "\n").encode())

    assert_accounted(con, outcome)
    assert row_counts(con) == (0, 1)
    [(stored_reason, column)] = con.execute("select reason, column_name from raw.rejected_rows").fetchall()
    assert stored_reason == reason
    assert column == field


def test_load_file_lone_quote_names_the_file():
    _con, outcome = load_bytes(b'"', name="quote.csv")

    assert isinstance(outcome, DuckmktError)
    assert "quote.csv has no header line" in str(outcome)
