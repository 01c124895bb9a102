"""Grow the real Online Retail order lines to any size by resampling whole customers.

Output customer k is a copy of one source customer drawn with replacement
(a hash of k and the seed picks it). The copy gets the id ``k`` and its
orders the id ``<order_id>-<k>`` (a suffix, so the 'C' prefix of
cancellations stays). All its lines move by the same whole number of days,
drawn uniformly from -w to w, where w is --max-shift-days or the customer's
distance to the edge of the source period when that is smaller. The shift
is symmetric so that recency keeps its distribution, and no line leaves the
period. Baskets (products, quantities, prices, times of day) and exact
duplicate lines stay as they are. Lines without a customer id are left out,
because no feature or label reads them.

The output is one Parquet file with the columns of ``raw.order_lines`` (all
text, as ``duckmkt load`` stores them). Online Retail has about 93 lines per
customer, so 1,080,000 customers give about 100 million lines. The script
prints the recency, frequency and monetary quantiles of the source and the
output side by side.

    python benchmarks/scale_data.py --customers 1080000 --out /tmp/duckmkt-scale/lines.parquet

Write the output under /tmp: 100 million lines take about 2 GB.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import duckdb

from duckmkt.database import connect_database
from duckmkt.loading import load_orders

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "online_retail" / "online_retail.csv.gz"
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
RAW_COLUMNS = (
    "load_id",
    "source_file",
    "source_line",
    "customer_id",
    "order_id",
    "ordered_at",
    "product_id",
    "quantity",
    "unit_price",
    "description",
    "country",
)

# One row per source customer: a dense index for the hash to pick from, and
# the first and last day of its lines, which bound the day shift.
SOURCE_CUSTOMERS_SQL = """
create or replace temp table source_customers as
select
    row_number() over (order by customer_id) - 1 as source_index,
    customer_id,
    min(ordered_at::timestamp) as first_at,
    max(ordered_at::timestamp) as last_at,
from raw.order_lines
where customer_id is not null
group by customer_id
"""

# Output customer k: which source customer it copies and the day shift.
# hash() is deterministic, so a seed gives the same file on any thread count.
PICKS_SQL = """
create or replace temp table picks as
with
period as (
    select min(first_at)::date as first_day, max(last_at)::date as last_day
    from source_customers
),
drawn as (
    select k, hash(k, $seed) % $n_source as source_index, hash(k, $seed + 1) as shift_draw
    from range($n_customers) as customers (k)
),
bounds as (
    select
        drawn.k,
        source.customer_id as source_customer_id,
        least(source.first_at::date - period.first_day, period.last_day - source.last_at::date, $max_shift) as max_shift,
        drawn.shift_draw,
    from drawn
    join source_customers as source using (source_index)
    cross join period
)
select
    k,
    source_customer_id,
    (shift_draw % (2 * max_shift + 1))::integer - max_shift as shift_days,
from bounds
"""

# source_line stays unique within the file: copy k of source line n gets
# k * 1,000,000 + n, so the staging view's duplicate check (first line wins)
# sees the duplicates of the source in the same order.
COPY_SQL = """
copy (
    select
        'scale' as load_id,
        'scale_data' as source_file,
        picks.k * 1000000 + lines.source_line as source_line,
        picks.k::varchar as customer_id,
        lines.order_id || '-' || picks.k as order_id,
        strftime(lines.ordered_at::timestamp + to_days(picks.shift_days), '%Y-%m-%d %H:%M:%S') as ordered_at,
        lines.product_id,
        lines.quantity,
        lines.unit_price,
        lines.description,
        lines.country,
    from picks
    join raw.order_lines as lines on lines.customer_id = picks.source_customer_id
) to '{target}' (format parquet, compression zstd, row_group_size 1000000)
"""

# Recency, frequency and monetary value of each customer from its lines: the
# classic RFM definitions on positive, non-cancelled lines, as of `cutoff`.
# Both the source and the output are measured with this one query.
RFM_QUANTILES_SQL = """
with
lines as (
    select
        customer_id,
        order_id,
        ordered_at::timestamp as ordered_at,
        try_cast(quantity as double) * try_cast(unit_price as double) as amount,
    from {relation}
    where customer_id is not null
      and not starts_with(upper(order_id), 'C')
      and try_cast(quantity as double) > 0
      and try_cast(unit_price as double) > 0
),
customers as (
    select
        customer_id,
        (epoch($cutoff::timestamp) - epoch(max(ordered_at))) / 86400.0 as recency_days,
        count(distinct order_id) as frequency,
        sum(amount) as monetary_value,
    from lines
    group by customer_id
)
select
    count(*) as n_customers,
    quantile_cont(recency_days, {quantiles}) as recency_days,
    quantile_cont(frequency, {quantiles}) as frequency,
    quantile_cont(monetary_value, {quantiles}) as monetary_value,
from customers
"""


def generate(source: duckdb.DuckDBPyConnection, target: Path, n_customers: int, *, seed: int = 0, max_shift_days: int = 30) -> int:
    """Write ``n_customers`` resampled customers of ``source``'s raw.order_lines to the Parquet file ``target``.

    Returns the number of lines written.
    """
    if n_customers < 1:
        raise ValueError(f"n_customers is {n_customers}; it must be at least 1")
    target = Path(target)
    source.execute("set enable_progress_bar = false")
    target.parent.mkdir(parents=True, exist_ok=True)
    source.execute(SOURCE_CUSTOMERS_SQL)
    n_source = source.execute("select count(*) from source_customers").fetchall()[0][0]
    source.execute(
        PICKS_SQL,
        {"seed": seed, "n_source": n_source, "n_customers": n_customers, "max_shift": max_shift_days},
    )
    source.execute(COPY_SQL.format(target=str(target).replace("'", "''")))
    return source.execute("select count(*) from read_parquet($path)", {"path": str(target)}).fetchall()[0][0]


def source_cutoff(source: duckdb.DuckDBPyConnection) -> str:
    """Return the day after the source's last line: the cutoff both RFM measurements use."""
    rows = source.execute("select (max(ordered_at::timestamp)::date + 1)::varchar from raw.order_lines").fetchall()
    return rows[0][0]


def rfm_quantiles(con: duckdb.DuckDBPyConnection, relation: str, cutoff: str) -> dict[str, list[float]]:
    """Return the customer count and the QUANTILES of recency_days, frequency and monetary_value of ``relation``."""
    sql = RFM_QUANTILES_SQL.format(relation=relation, quantiles=list(QUANTILES))
    n_customers, recency, frequency, monetary = con.execute(sql, {"cutoff": cutoff}).fetchall()[0]
    return {"n_customers": n_customers, "recency_days": recency, "frequency": frequency, "monetary_value": monetary}


def format_comparison(source: dict[str, list[float]], output: dict[str, list[float]]) -> str:
    """Return a table of each quantile of the source beside the output."""
    lines = [f"customers: source {source['n_customers']:,}, output {output['n_customers']:,}"]
    lines.append(f"{'measure':<16}{'quantile':>9}{'source':>14}{'output':>14}")
    for measure in ("recency_days", "frequency", "monetary_value"):
        for quantile, source_value, output_value in zip(QUANTILES, source[measure], output[measure]):
            lines.append(f"{measure:<16}{quantile:>9.2f}{source_value:>14.2f}{output_value:>14.2f}")
    return "\n".join(lines)


def open_source(database: Path | None, folder: Path) -> duckdb.DuckDBPyConnection:
    """Open ``database`` read-only, or load the Online Retail CSV into a new database under ``folder``."""
    if database is not None:
        return duckdb.connect(str(database), read_only=True)
    con = connect_database(folder / "online_retail.duckdb")
    load_orders(con, DATA)
    return con


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, required=True, help="number of customers to write")
    parser.add_argument("--out", type=Path, required=True, help="Parquet file to write (replaced)")
    parser.add_argument("--source", type=Path, default=None, help="DuckDB database with Online Retail loaded; default: load the CSV")
    parser.add_argument("--seed", type=int, default=0, help="seed of the customer draw and the day shifts")
    parser.add_argument("--max-shift-days", type=int, default=30, help="largest day shift of a copied customer, either way")
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="duckmkt-scale-") as folder:
        con = open_source(arguments.source, Path(folder))
        started = time.perf_counter()
        n_lines = generate(con, arguments.out, arguments.customers, seed=arguments.seed, max_shift_days=arguments.max_shift_days)
        seconds = time.perf_counter() - started
        cutoff = source_cutoff(con)
        source = rfm_quantiles(con, "raw.order_lines", cutoff)
        output = rfm_quantiles(con, f"read_parquet('{arguments.out}')", cutoff)
        con.close()

    size_mb = arguments.out.stat().st_size / 1e6
    print(f"{arguments.out}: {arguments.customers:,} customers, {n_lines:,} lines, {size_mb:,.0f} MB in {seconds:.1f} s")
    print(f"RFM as of {cutoff}")
    print(format_comparison(source, output))


if __name__ == "__main__":
    main()
