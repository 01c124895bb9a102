"""Write the embedded default dataset: an excerpt of UCI Online Retail.

The excerpt keeps every invoice line of the customers whose id falls in the
first 30 of 100 md5 buckets, and the same share of the lines with no
customer id, so the demo meets duplicates, cancellations and missing ids as
in the full data. Values stay text, exactly as in the source file.

Usage: python scripts/make_default_data.py [SOURCE_CSV_GZ]
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "data" / "online_retail" / "online_retail.csv.gz"
TARGET = ROOT / "src" / "duckmkt" / "data" / "online_retail_excerpt.parquet"
SHARE_PERCENT = 30


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE
    con = duckdb.connect()

    # md5 is stable across DuckDB versions, unlike hash().
    bucket = "(('0x' || left(md5({key}), 8))::bigint % 100)"
    con.execute(
        f"""
        copy (
            select *
            from read_csv('{source}', all_varchar = true, header = true)
            where (CustomerID is not null and {bucket.format(key="CustomerID")} < {SHARE_PERCENT})
               or (CustomerID is null and {bucket.format(key="InvoiceNo || StockCode")} < {SHARE_PERCENT})
        ) to '{TARGET}' (format parquet, compression zstd, compression_level 19)
        """
    )
    n_rows, n_customers = con.execute(f"select count(*), count(distinct CustomerID) from '{TARGET}'").fetchall()[0]
    print(f"wrote {TARGET}: {n_rows} rows, {n_customers} customers")


if __name__ == "__main__":
    main()
