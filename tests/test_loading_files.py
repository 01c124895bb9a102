"""Load small crafted files: encodings, headers, ids, numbers, dates and broken rows."""

from __future__ import annotations

import gzip
from pathlib import Path

import duckdb
import polars as pl
import pytest

from duckmkt import sql_views
from duckmkt.errors import InputFileError, MappingError
from duckmkt.loading import AmbiguousDateError, Mapping, load_file, load_files, load_orders, read_mapping, read_mappings
from duckmkt.loading.dates import DateOrderError, date_format_error, parse_dates

ORDER_HEADER = "customer_id,order_id,ordered_at,product_id,quantity,unit_price\n"


@pytest.fixture
def con():
    connection = duckdb.connect()
    sql_views.install(connection)
    yield connection
    connection.close()


def _write(folder: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = folder / name
    path.write_bytes(text.encode(encoding))
    return path


def _rejected(con, source_file: str) -> list[tuple[int, str]]:
    return con.execute(
        "select source_line, reason from mkt.rejected_rows where source_file = ? order by source_line", [source_file]
    ).fetchall()


def _column(con, sql: str) -> list:
    return [row[0] for row in con.execute(sql).fetchall()]


def test_gbk_chinese_headers_and_dates(con, tmp_path):
    text = "客户编号,订单号,下单时间,商品编号,数量,单价\n00017,A1,2011年12月9日,P1,2,3.5\n00018,A2,2011年1月3日 下午3:05,P2,1,10\n"
    path = _write(tmp_path, "orders_gbk.csv", text, "gbk")
    mapping = Mapping(
        "chinese",
        {"customer_id": "客户编号", "order_id": "订单号", "ordered_at": "下单时间", "product_id": "商品编号",
         "quantity": "数量", "unit_price": "单价"},
    )
    report = load_orders(con, path, mapping)

    assert report.encoding == "gb18030"
    assert report.encoding_confidence >= 0.8
    assert report.n_rows_loaded == 2
    assert _column(con, "select customer_id from mkt.stg_order_lines order by 1") == ["00017", "00018"]
    assert _column(con, "select ordered_at::varchar from mkt.stg_order_lines order by 1") == [
        "2011-01-03 15:05:00", "2011-12-09 00:00:00"
    ]


def test_gbk_read_as_latin1_warns(con, tmp_path):
    text = "客户编号,订单号,下单时间,商品编号,数量,单价\n1,A1,2011-12-09,P1,2,3.5\n"
    path = _write(tmp_path, "orders_gbk.csv", text, "gbk")
    mapping = Mapping("x", {"customer_id": "1", "order_id": "2", "ordered_at": "3", "product_id": "4", "quantity": "5", "unit_price": "6"})

    with pytest.raises(MappingError, match="The file's columns are"):
        load_file(con, path, mapping=mapping, encoding="latin-1")
    from duckmkt.loading.encodings import decode_bytes

    decoded = decode_bytes(path.read_bytes(), path.name, "latin-1")
    assert decoded.warnings


def test_latin1_file_detected_not_gbk(con, tmp_path):
    text = ORDER_HEADER.replace("\n", ",description\n") + "1,A1,2011-12-09,P1,2,3.5,Crème brûlée Müller\n2,A2,2011-12-09,P1,1,3.5,Café\n"
    path = _write(tmp_path, "latin.csv", text, "latin-1")
    report = load_orders(con, path, read_mapping_contract_with_description())

    assert report.encoding in ("cp1252", "latin-1")
    assert _column(con, "select description from mkt.stg_order_lines order by source_line") == ["Crème brûlée Müller", "Café"]


def read_mapping_contract_with_description() -> Mapping:
    names = ("customer_id", "order_id", "ordered_at", "product_id", "quantity", "unit_price", "description")
    return Mapping("contract", {name: name for name in names})


def test_bom_and_spaced_headers(con, tmp_path):
    text = "Customer ID;Order No;Date;Item;Qty;Price\n17850.0;536365;13/12/2010 08:26;85123A;6;2,55\n"
    path = _write(tmp_path, "bom.csv", text, "utf-8-sig")
    mapping = Mapping(
        "spaced",
        {"customer_id": "Customer ID", "order_id": "Order No", "ordered_at": "Date", "product_id": "Item",
         "quantity": "Qty", "unit_price": "Price"},
        csv_options={"decimal_comma": True},
    )
    report = load_orders(con, path, mapping)

    assert report.encoding == "utf-8-sig"
    assert report.delimiter == ";"
    assert _column(con, "select customer_id from mkt.stg_order_lines") == ["17850"]
    assert _column(con, "select unit_price::double from mkt.stg_order_lines") == [2.55]


def test_late_non_numeric_id_and_exact_numbers(con, tmp_path):
    rows = [f"{1000 + i},{536000 + i},2011-01-01 10:00,P{i},1,2\n" for i in range(3000)]
    rows.append("1000,C536379,2011-01-02 10:00,P1,-1,2.55\n")
    rows.append("1000,536999,2011-01-02 10:00,P1,1,0.1000000000000000055511151231257827\n")
    rows.append("1000,537000,2011-01-02 10:00,P1,one,2\n")
    path = _write(tmp_path, "late.csv", ORDER_HEADER + "".join(rows))
    report = load_orders(con, path)

    assert report.n_rows_read == 3003
    assert report.n_rows_loaded == 3001
    assert report.rejected_by_reason == {"inexact_number": 1, "invalid_number": 1}
    assert _rejected(con, "late.csv") == [(3003, "inexact_number"), (3004, "invalid_number")]
    assert _column(con, "select unit_price::double from mkt.stg_order_lines where order_id = 'C536379'") == [2.55]
    assert report.line_status_counts["cancellation"] == 1


def test_mixed_date_formats_and_time_zone(con, tmp_path):
    text = (
        "customer_id,event_at,event_type\n"
        "1,2011-12-09T12:50:00+08:00,view\n"
        "1,20111209,view\n"
        "1,25/12/2011 08:26,add_to_cart\n"
        "1,03/04/2011,view\n"
        "1,2011年12月9日,search\n"
        "1,2011-12-09T12:50:00Z,view\n"
        "1,not a date,view\n"
    )
    path = _write(tmp_path, "events.csv", text)
    report = load_file(con, path, kind="events")

    assert report.date_orders == {"event_at": "day-first"}
    assert report.n_dates_converted_to_utc == 2
    assert _rejected(con, "events.csv") == [(8, "invalid_date")]
    assert _column(con, "select event_at::varchar from mkt.stg_events order by source_line") == [
        "2011-12-09 04:50:00", "2011-12-09 00:00:00", "2011-12-25 08:26:00", "2011-04-03 00:00:00",
        "2011-12-09 00:00:00", "2011-12-09 12:50:00",
    ]


def test_ambiguous_dates_need_a_format(con, tmp_path):
    path = _write(tmp_path, "events.csv", "customer_id,event_at,event_type\n1,03/04/2011,view\n")

    with pytest.raises(AmbiguousDateError, match="date-format"):
        load_file(con, path, kind="events")
    report = load_file(con, path, kind="events", date_format="month-first")
    assert _column(con, "select event_at::date::varchar from mkt.stg_events") == ["2011-03-04"]
    assert report.date_orders == {"event_at": "month-first"}


def test_all_rows_rejected_load_can_be_redone(con, tmp_path):
    path = _write(tmp_path, "events.csv", "customer_id,event_at,event_type\n1,03/24/2011,view\n2,04/25/2011,view\n")

    first = load_file(con, path, kind="events", date_format="%d/%m/%Y")
    report = load_file(con, path, kind="events", date_format="%m/%d/%Y")

    assert first.n_rows_rejected == 2
    assert first.n_rows_loaded == 0
    assert not report.skipped_as_repeat
    assert report.n_rows_loaded == 2
    assert _column(con, "select event_at::date::varchar from mkt.stg_events order by 1") == ["2011-03-24", "2011-04-25"]
    # The rejected rows of the first attempt are kept with their reason.
    assert _column(con, "select count(*) from raw.rejected_rows where reason = 'invalid_date'") == [2]


def test_wrong_given_date_order_stops(con, tmp_path):
    text = "customer_id,Seen,event_type\n1,01/12/2010 08:26,view\n2,20/12/2010 09:00,view\n3,2010-12-21,view\n"
    path = _write(tmp_path, "events.csv", text)

    with pytest.raises(DateOrderError) as raised:
        load_file(con, path, kind="events", date_format="month-first", mapping=_events_mapping())
    message = str(raised.value)
    assert "Seen" in message
    assert "20/12/2010 09:00" in message
    assert "--date-format day-first" in message
    assert _column(con, "select count(*) from raw.events") == [0]
    assert _column(con, "select count(*) from raw.rejected_rows") == [0]
    assert _column(con, "select count(*) from raw.load_log") == [0]

    report = load_file(con, path, kind="events", date_format="day-first", mapping=_events_mapping())
    assert report.n_rows_loaded == 3
    assert _column(con, "select event_at::date::varchar from mkt.stg_events order by 1") == [
        "2010-12-01", "2010-12-20", "2010-12-21",
    ]


def test_given_date_order_with_dates_neither_reads(con, tmp_path):
    # 13/01 fits only day-first and 01/13 only month-first, so neither order
    # reads every date: the load keeps the given order and rejects one row.
    text = "customer_id,event_at,event_type\n1,01/13/2011,view\n2,13/01/2011,view\n"
    path = _write(tmp_path, "events.csv", text)

    report = load_file(con, path, kind="events", date_format="month-first")

    assert report.n_rows_loaded == 1
    assert _rejected(con, "events.csv") == [(3, "invalid_date")]


def test_wrong_date_order_in_second_part_stores_nothing(con, tmp_path):
    mapping_file = _write(
        tmp_path, "two_kinds.toml",
        "[customers.columns]\ncustomer_id = \"id\"\nsigned_up_at = \"Joined\"\n\n"
        "[events.columns]\ncustomer_id = \"id\"\nevent_at = \"Seen\"\nevent_type = \"Action\"\n",
    )
    text = "id,Joined,Seen,Action\n1,2010-01-05,01/12/2010,view\n2,2010-02-07,25/12/2010,view\n"
    path = _write(tmp_path, "both.csv", text)

    with pytest.raises(DateOrderError, match="Seen"):
        load_files(con, path, read_mappings(mapping_file), date_format="month-first")

    assert _column(con, "select count(*) from raw.customers") == [0]
    assert _column(con, "select count(*) from raw.load_log") == [0]


def test_replace_deletes_earlier_load(con, tmp_path):
    # Every date reads both ways, so a wrong month-first load succeeds.
    text = "customer_id,event_at,event_type\n1,03/04/2011,view\n2,05/06/2011,view\n3,not a date,view\n"
    path = _write(tmp_path, "events.csv", text)
    wrong = load_file(con, path, kind="events", date_format="month-first")
    [(old_load_id,)] = con.execute("select load_id from raw.load_log").fetchall()

    repeat = load_file(con, path, kind="events", date_format="day-first")
    assert repeat.skipped_as_repeat
    assert "--replace" in repeat.summary()

    report = load_file(con, path, kind="events", date_format="day-first", replace=True)
    [(new_load_id,)] = con.execute("select load_id from raw.load_log").fetchall()

    assert wrong.n_rows_loaded == 2
    assert new_load_id != old_load_id
    assert report.replaced_load_ids == (old_load_id,)
    assert report.n_rows_replaced == 2
    assert report.n_rejected_rows_replaced == 1
    assert report.n_rows_loaded == 2
    assert old_load_id in report.summary()
    assert _column(con, "select event_at::date::varchar from mkt.stg_events order by 1") == ["2011-04-03", "2011-06-05"]
    assert _column(con, "select distinct load_id from raw.events") == [new_load_id]
    assert _column(con, "select count(*) from raw.events where load_id = '" + old_load_id + "'") == [0]
    assert _column(con, "select count(*) from raw.rejected_rows where load_id = '" + old_load_id + "'") == [0]
    assert _column(con, "select load_id from raw.rejected_rows") == [new_load_id]
    assert _rejected(con, "events.csv") == [(4, "invalid_date")]


def test_replace_without_earlier_load(con, tmp_path):
    path = _write(tmp_path, "events.csv", "customer_id,event_at,event_type\n1,2011-04-03,view\n")

    report = load_file(con, path, kind="events", replace=True)

    assert report.n_rows_loaded == 1
    assert report.replaced_load_ids == ()
    assert "Replaced" not in report.summary()


def _events_mapping() -> Mapping:
    return Mapping("events", {"customer_id": "customer_id", "event_at": "Seen", "event_type": "event_type"}, kind="events")


def test_naive_dates_in_a_given_time_zone(con, tmp_path):
    path = _write(tmp_path, "events.csv", "customer_id,event_at,event_type\n1,2011-12-09 08:00,view\n")
    report = load_file(con, path, kind="events", timezone="Asia/Shanghai")

    assert report.n_dates_converted_to_utc == 1
    assert _column(con, "select event_at::varchar from mkt.stg_events") == ["2011-12-09 00:00:00"]


def test_empty_file_raises(con, tmp_path):
    path = _write(tmp_path, "empty.csv", "")
    with pytest.raises(InputFileError, match="empty"):
        load_orders(con, path, read_mapping_contract_with_description())


def test_header_only_file_loads_nothing(con, tmp_path):
    path = _write(tmp_path, "header.csv", ORDER_HEADER)
    report = load_orders(con, path)

    assert report.n_rows_read == 0
    assert report.n_rows_loaded == 0
    assert _column(con, "select n_rows_read from raw.load_log") == [0]


def test_truncated_gzip_raises(con, tmp_path):
    data = gzip.compress((ORDER_HEADER + "1,A1,2011-01-01,P1,1,2\n" * 2000).encode())
    path = tmp_path / "orders.csv.gz"
    path.write_bytes(data[: len(data) // 2])

    with pytest.raises(InputFileError, match="truncated"):
        load_orders(con, path)
    assert _column(con, "select count(*) from raw.order_lines") == [0]


def test_zstd_file_loads(con, tmp_path):
    zstandard = pytest.importorskip("zstandard")
    path = tmp_path / "orders.csv.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress((ORDER_HEADER + "1,A1,2011-01-01,P1,1,2\n").encode()))
    assert load_orders(con, path).n_rows_loaded == 1


def test_too_many_and_too_few_fields_rejected(con, tmp_path):
    text = ORDER_HEADER + "1,A1,2011-01-01,P1,1,2\n1,A2,2011-01-01,P1,1,2,extra\n1,A3,2011-01-01\n1,A4,2011-01-01,P1,1,2\n"
    path = _write(tmp_path, "fields.csv", text)
    report = load_orders(con, path)

    assert report.n_rows_loaded == 2
    assert _rejected(con, "fields.csv") == [(3, "too_many_fields"), (4, "too_few_fields")]
    assert report.n_rows_read == report.n_rows_loaded + report.n_rows_rejected


def test_unclosed_quote_rejects_only_its_line(con, tmp_path):
    # Line 4 opens a quote that is never closed. Read as written, the field
    # runs on to the quote on line 9, swallowing lines 5 to 8, and the record
    # still has the header's 8 fields, so it would load as one sale.
    header = "order_id,product_id,description,quantity,ordered_at,unit_price,customer_id,country\n"
    lines = [
        "A1,P1,LANTERN,6,2011-01-01 08:26:00,2.55,17850,United Kingdom",
        "A2,P2,LANTERN,6,2011-01-01 08:26:00,2.55,17850,United Kingdom",
        'A3,"P3 UNCLOSED,WHITE,6,2011-01-01 08:26:00,2.55,17850,United Kingdom',
        "A4,P4,LANTERN,6,2011-01-01 08:26:00,2.55,17850,United Kingdom",
        "A5,P5,LANTERN,6,2011-01-01 08:26:00,2.55,17850,United Kingdom",
        "A6,P6,LANTERN,6,2011-01-01 08:26:00,2.55,17850,United Kingdom",
        "A7,P7,LANTERN,6,2011-01-01 08:26:00,2.55,17850,United Kingdom",
        'A8,P8,"AIRLINE LOUNGE,METAL SIGN",2,2011-01-01 09:41:00,2.1,15311,United Kingdom',
        "A9,P9,LANTERN,6,2011-01-01 08:26:00,2.55,17850,United Kingdom",
    ]
    path = _write(tmp_path, "unclosed.csv", header + "\n".join(lines) + "\n")
    report = load_orders(con, path)

    assert report.n_rows_read == 9
    assert report.n_rows_loaded == 8
    assert report.n_rows_rejected == 1
    assert _rejected(con, "unclosed.csv") == [(4, "unclosed_quote")]
    assert _column(con, "select source_text from mkt.rejected_rows") == [lines[2]]
    assert _column(con, "select product_id from raw.order_lines order by source_line") == [
        "P1", "P2", "P4", "P5", "P6", "P7", "P8", "P9"
    ]
    assert _column(con, "select source_line from raw.order_lines order by source_line") == [2, 3, 5, 6, 7, 8, 9, 10]
    assert _column(con, "select description from raw.order_lines where product_id = 'P8'") == ["AIRLINE LOUNGE,METAL SIGN"]
    [warning] = [text for text in report.warnings if "unclosed_quote" in text]
    assert "line(s) 4 " in warning
    assert "Close the quote" in warning


def test_unclosed_quote_to_end_of_file(con, tmp_path):
    # No later quote closes the field, so it would run to the end of the file.
    text = ORDER_HEADER + '1,A1,2011-01-01,"P1,1,2\n1,A2,2011-01-01,P2,1,2\n1,A3,2011-01-01,P3,1,2\n'
    path = _write(tmp_path, "unclosed_end.csv", text)
    report = load_orders(con, path)

    assert report.n_rows_read == 3
    assert _rejected(con, "unclosed_end.csv") == [(2, "unclosed_quote")]
    assert _column(con, "select product_id from raw.order_lines order by source_line") == ["P2", "P3"]


def test_several_unclosed_quotes_each_rejected(con, tmp_path):
    text = ORDER_HEADER + (
        '1,A1,2011-01-01,"P1,1,2\n'
        "1,A2,2011-01-01,P2,1,2\n"
        '1,A3,2011-01-01,"P3,1,2\n'
        "1,A4,2011-01-01,P4,1,2\n"
        '1,A5,2011-01-01,"P5, BOXED",1,2\n'
    )
    path = _write(tmp_path, "unclosed_twice.csv", text)
    report = load_orders(con, path)

    assert report.n_rows_read == 5
    assert _rejected(con, "unclosed_twice.csv") == [(2, "unclosed_quote"), (4, "unclosed_quote")]
    assert _column(con, "select product_id from raw.order_lines order by source_line") == ["P2", "P4", "P5, BOXED"]
    assert any("line(s) 2, 4 " in warning for warning in report.warnings)


def test_quoted_field_with_line_breaks_loads(con, tmp_path):
    # The second record's middle line has the header's field count by itself,
    # but the record is well-formed, so it is one field and not an unclosed quote.
    text = ORDER_HEADER + (
        '1,A1,2011-01-01,"P1 first line\nsecond line",1,2\n'
        '1,A2,2011-01-01,"P2 first line\na,b,c,d,e,f\nlast line",1,2\n'
        "1,A3,2011-01-01,P3,1,2\n"
    )
    path = _write(tmp_path, "multiline.csv", text)
    report = load_orders(con, path)

    assert report.n_rows_read == 3
    assert report.n_rows_loaded == 3
    assert _rejected(con, "multiline.csv") == []
    assert _column(con, "select product_id from raw.order_lines order by source_line") == [
        "P1 first line\nsecond line", "P2 first line\na,b,c,d,e,f\nlast line", "P3"
    ]
    assert _column(con, "select source_line from raw.order_lines order by source_line") == [2, 4, 7]
    assert not any("unclosed_quote" in warning for warning in report.warnings)


def test_quoted_fields_file_counts_unchanged(con, tmp_path):
    text = ORDER_HEADER + (
        '1,A1,2011-01-01,"P1, BOXED",1,2\n'
        '1,A2,2011-01-01,"12"" RULER",1,2\n'
        '1,A3,2011-01-01,12" RULER,1,2\n'
        "1,A4,2011-01-01,P4,1,2,extra\n"
        "1,A5,2011-01-01,P5,1,2\n"
    )
    path = _write(tmp_path, "quoted.csv", text)
    report = load_orders(con, path)

    assert (report.n_rows_read, report.n_rows_loaded, report.n_rows_rejected) == (5, 4, 1)
    assert _rejected(con, "quoted.csv") == [(5, "too_many_fields")]
    assert _column(con, "select product_id from raw.order_lines order by source_line") == [
        "P1, BOXED", '12" RULER', '12" RULER', "P5"
    ]


def test_real_orders_no_unclosed_quote(con, small_orders_csv):
    report = load_orders(con, small_orders_csv)
    [[n_records]] = duckdb.sql(f"select count(*) from read_csv('{small_orders_csv}', all_varchar = true, header = true)").fetchall()

    assert report.n_rows_read == n_records
    assert report.n_rows_read == report.n_rows_loaded + report.n_rows_rejected
    assert "unclosed_quote" not in report.rejected_by_reason


def test_newer_extract_adds_only_new_rows(con, tmp_path):
    first = _write(tmp_path, "extract_1.csv", ORDER_HEADER + "1,A1,2011-01-01,P1,1,2\n1,A1,2011-01-01,P1,1,2\n")
    second = _write(
        tmp_path, "extract_2.csv",
        ORDER_HEADER + "1,A1,2011-01-01,P1,1,2\n1,A1,2011-01-01,P1,1,2\n2,A2,2011-02-01,P2,3,4\n",
    )
    load_orders(con, first)
    report = load_orders(con, second)

    assert report.n_rows_loaded == 1
    assert report.n_rows_already_loaded == 2
    assert _column(con, "select count(*) from raw.order_lines") == [3]


def test_unknown_mapping_column_lists_file_columns(con, tmp_path):
    path = _write(tmp_path, "orders.csv", ORDER_HEADER)
    mapping = Mapping("bad", {**{name: name for name in ORDER_HEADER.strip().split(",")}, "customer_id": "Kunde"})

    with pytest.raises(MappingError, match="Kunde.*customer_id, order_id"):
        load_orders(con, path, mapping)


def test_parquet_and_excel_files(con, tmp_path):
    frame = pl.DataFrame({"product_id": ["007", "008"], "category": ["mugs", "cups"], "unit_price": [2.55, 10.0]})
    frame.write_parquet(tmp_path / "products.parquet")
    parquet = load_file(con, tmp_path / "products.parquet", kind="products")

    openpyxl = pytest.importorskip("openpyxl")
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["product_id", "category", "unit_price"])
    sheet.append(["009", "plates", 3.25])
    workbook.save(tmp_path / "products.xlsx")
    excel = load_file(con, tmp_path / "products.xlsx", kind="products")

    assert parquet.n_rows_loaded == 2
    assert excel.n_rows_loaded == 1
    assert _column(con, "select unit_price from mkt.stg_products order by product_id") == [2.55, 10.0, 3.25]


def test_customers_keep_other_attributes(con, tmp_path):
    text = "customer_id,birth_year,gender,loyalty tier\nA7,1980,F,gold\nA8,19x0,M,silver\n,1990,F,none\n"
    path = _write(tmp_path, "customers.csv", text)
    report = load_file(con, path, kind="customers")

    assert report.n_rows_loaded == 1
    assert _rejected(con, "customers.csv") == [(3, "invalid_number"), (4, "missing_value")]
    assert _column(con, "select attributes->>'loyalty tier' from mkt.stg_customers") == ["gold"]


def test_interactions_with_treatment_flag(con, tmp_path):
    text = (
        "customer_id,occurred_at,channel,campaign_id,interaction_type,outcome,treatment\n"
        "1,2011-01-01,email,c1,open,opened,yes\n1,2011-01-02,email,c1,click,clicked,maybe\n"
    )
    path = _write(tmp_path, "interactions.csv", text)
    report = load_file(con, path, kind="interactions")

    assert report.n_rows_loaded == 1
    assert _rejected(con, "interactions.csv") == [(3, "invalid_flag")]
    assert _column(con, "select treatment from mkt.stg_interactions") == [True]


def test_unmapped_column_is_named_in_the_report(con, tmp_path):
    header = ORDER_HEADER.rstrip("\n") + ",Promo\n"
    path = _write(tmp_path, "promo.csv", header + "17850,536365,2010-12-01 08:26,85123A,6,2.55,SUMMER\n")

    report = load_orders(con, path)

    assert report.n_rows_loaded == 1
    assert len(report.warnings) == 1
    assert "Promo" in report.warnings[0]
    assert "were not loaded" in report.warnings[0]
    assert "Warning: The columns Promo" in report.summary()


def test_fully_mapped_file_has_no_unmapped_warning(con, tmp_path):
    path = _write(tmp_path, "plain.csv", ORDER_HEADER + "17850,536365,2010-12-01 08:26,85123A,6,2.55\n")

    report = load_orders(con, path)

    assert report.warnings == ()


@pytest.mark.parametrize(
    ("date_format", "texts"),
    [
        ("%-d.%-m.%Y %-H:%-M:%-S", ["5.1.2011 7:4:9", "15.12.2011 13:45:30"]),
        ("%d %h %Y %T", ["05 Jan 2011 07:04:09", "15 Dec 2011 13:45:30"]),
        ("%Y-%m-%d %H:%M:%S.%g", ["2011-01-05 07:04:09.123", "2011-12-15 13:45:30.007"]),
        ("%Y %-j %-I%p", ["2011 5 7AM", "2011 349 1PM"]),
    ],
)
def test_parse_dates_duckdb_directives_match_duckdb(date_format, texts):
    parsed = parse_dates(texts, "ordered_at", date_format=date_format)
    expected = duckdb.execute("select t, strptime(t, ?) from unnest(?) as u(t)", [date_format, texts]).fetchall()

    assert date_format_error(date_format) is None
    for text, value in expected:
        assert parsed.values[text] == value, text


@pytest.mark.parametrize("directive", ["%Q", "%-Q", "%", "%-"])
def test_date_format_error_unknown_directive(directive):
    value = f"%Y-%m-%d {directive}"

    message = date_format_error(value)

    assert message is not None
    assert repr(value) in message
    assert f"{directive} is not a strptime directive" in message
    assert "%d/%m/%Y %H:%M" in message
