"""Write an Online Retail database scaled up by copying every customer under new ids.

Copy k of a customer gets the id ``<id>-k`` and each of its orders the id
``<order_id>-k`` (a suffix, so the 'C' prefix of cancellations stays). Every
copy keeps the original dates, products and amounts, so a database scaled by N
has N times the order lines and customers with the same distributions. Lines
without a customer id are copied too, with suffixed order ids, so the data
quality counts scale as well.

Usage: python benchmarks/spark_scale.py SOURCE.duckdb TARGET.duckdb FACTOR
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import duckdb

from duckmkt.database import connect_database

COPY_SQL = """
insert into raw.order_lines
select
    lines.load_id,
    lines.source_file,
    lines.source_line,
    lines.customer_id || '-' || copies.k,
    lines.order_id || '-' || copies.k,
    lines.ordered_at,
    lines.product_id,
    lines.quantity,
    lines.unit_price,
    lines.description,
    lines.country,
from source.raw.order_lines as lines
cross join range({factor}) as copies (k)
"""


def scale_database(source: Path, target: Path, factor: int) -> int:
    """Write ``target`` with the order lines of ``source`` copied ``factor`` times; return its number of lines."""
    if target.exists():
        target.unlink()
    con = connect_database(target)
    try:
        con.execute(f"attach '{source}' as source (read_only)")
        con.execute(COPY_SQL.format(factor=int(factor)))
        con.execute("insert into raw.load_log select * from source.raw.load_log")
        con.execute("detach source")
        return con.execute("select count(*) from raw.order_lines").fetchall()[0][0]
    finally:
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="DuckDB database with Online Retail loaded")
    parser.add_argument("target", type=Path, help="database file to write (replaced)")
    parser.add_argument("factor", type=int, help="number of copies of every customer")
    args = parser.parse_args()
    started = time.perf_counter()
    n_lines = scale_database(args.source, args.target, args.factor)
    print(f"{args.target}: {n_lines} order lines ({args.factor}x) in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
