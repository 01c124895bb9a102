"""benchmarks/scale_data.py: resampled customers keep their baskets and the source's RFM distribution."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import duckdb
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
N_CUSTOMERS = 3000


@pytest.fixture(scope="module")
def scale_data():
    spec = importlib.util.spec_from_file_location("scale_data", BENCHMARKS / "scale_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def scaled(scale_data, small_db, tmp_path_factory):
    """(source connection, output Parquet path) for N_CUSTOMERS resampled from the small real database."""
    target = tmp_path_factory.mktemp("scale_data") / "lines.parquet"
    source = duckdb.connect(str(small_db), read_only=True)
    scale_data.generate(source, target, N_CUSTOMERS, seed=3)
    yield source, target
    source.close()


def test_scale_data_customer_count(scaled):
    source, target = scaled

    n_customers = source.execute(f"select count(distinct customer_id) from read_parquet('{target}')").fetchall()[0][0]

    assert n_customers == N_CUSTOMERS


def test_scale_data_keeps_baskets(scaled):
    source, target = scaled
    # Each output customer has exactly the lines of its source customer:
    # same products, quantities, prices and times of day, under new order ids.
    mismatches = source.execute(
        f"""
        with
        output as (
            select
                picks.source_customer_id,
                lines.customer_id,
                list(lines.product_id || '|' || lines.quantity || '|' || lines.unit_price || '|' || right(lines.ordered_at, 8)
                     order by lines.source_line) as basket,
            from read_parquet('{target}') as lines
            join picks on picks.k::varchar = lines.customer_id
            group by all
        ),
        original as (
            select
                customer_id as source_customer_id,
                list(product_id || '|' || quantity || '|' || unit_price || '|' || right(ordered_at::timestamp::varchar, 8)
                     order by source_line) as basket,
            from raw.order_lines
            where customer_id is not null
            group by all
        )
        select count(*)
        from output
        join original using (source_customer_id)
        where output.basket != original.basket
        """
    ).fetchall()[0][0]

    assert mismatches == 0


def test_scale_data_dates_within_period(scaled):
    source, target = scaled

    period = source.execute("select min(ordered_at::timestamp), max(ordered_at::timestamp) from raw.order_lines").fetchall()[0]
    output = source.execute(f"select min(ordered_at::timestamp), max(ordered_at::timestamp) from read_parquet('{target}')").fetchall()[0]

    assert output[0].date() >= period[0].date()
    assert output[1].date() <= period[1].date()


def test_scale_data_rfm_quantiles_match(scale_data, scaled):
    source, target = scaled
    cutoff = scale_data.source_cutoff(source)

    expected = scale_data.rfm_quantiles(source, "raw.order_lines", cutoff)
    actual = scale_data.rfm_quantiles(source, f"read_parquet('{target}')", cutoff)

    # About 430 source customers resampled 3,000 times: each quantile stays
    # within 15 % of the source (recency also within 5 days, the day shift
    # being at most 30 days either way).
    for measure in ("recency_days", "frequency", "monetary_value"):
        for quantile, source_value, output_value in zip(scale_data.QUANTILES, expected[measure], actual[measure]):
            tolerance = 0.15 * abs(source_value) + (5.0 if measure == "recency_days" else 0.0)
            assert abs(output_value - source_value) <= tolerance, f"{measure} q{quantile}: source {source_value}, output {output_value}"
