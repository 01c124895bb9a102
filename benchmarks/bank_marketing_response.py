"""Bank Marketing with a generic label: stratified 5-fold cross-validated AUC of a duckmkt response model.

The label is the campaign outcome ``y`` from the interactions table. The
``duration`` column is never used: it is only known after the call ends.
Two feature sets are measured:

- ``preset``: what ``duckmkt load --preset bank_marketing`` stores (client
  attributes, contact channel, contact month and day);
- ``full_csv``: the same plus campaign, pdays, previous and poutcome, read
  from the CSV in the feature query, because the preset does not load them.

Run from the repository root:

    python benchmarks/bank_marketing_response.py [--folds 5] [--feature-sets preset full_csv]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from duckmkt.database import connect_database
from duckmkt.loading import load_files, read_mappings
from duckmkt.training.response import train_response

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "bank_marketing" / "bank-full.csv.gz"

LABEL = "select customer_id, (outcome = 'yes')::integer as label from mkt.stg_interactions"

CATEGORIES = {
    "job": ["admin.", "blue-collar", "entrepreneur", "housemaid", "management", "retired", "self-employed",
            "services", "student", "technician", "unemployed"],
    "marital": ["married", "single", "divorced"],
    "education": ["primary", "secondary", "tertiary"],
    "contact": ["cellular", "telephone"],
    "poutcome": ["success", "failure", "other"],
}


def one_hot(expression: str, column: str) -> str:
    return ",\n".join(
        f"({expression} = '{value}')::integer as {column}_{value.replace('.', '').replace('-', '_')}"
        for value in CATEGORIES[column]
    )


def preset_features() -> str:
    attribute = "json_extract_string(customers.attributes, '$.{}')"
    month_dummies = ",\n".join(
        f"(month(interactions.occurred_at) = {month})::integer as contact_month_{month}" for month in range(1, 13)
    )
    return f"""
        select
            customers.customer_id,
            {attribute.format('age')}::double as age,
            {attribute.format('balance')}::double as balance,
            ({attribute.format('default')} = 'yes')::integer as has_default,
            ({attribute.format('housing')} = 'yes')::integer as has_housing_loan,
            ({attribute.format('loan')} = 'yes')::integer as has_personal_loan,
            {one_hot(attribute.format('job'), 'job')},
            {one_hot(attribute.format('marital'), 'marital')},
            {one_hot(attribute.format('education'), 'education')},
            {one_hot('interactions.channel', 'contact')},
            day(interactions.occurred_at) as contact_day,
            {month_dummies},
            -- Months since the campaign's first month: the success rate
            -- changed over the campaign, and the contact date is known before the call.
            datediff('month', date '2008-05-01', interactions.occurred_at) as campaign_month
        from mkt.stg_customers as customers
        inner join mkt.stg_interactions as interactions using (customer_id)
    """


def full_csv_features(path: Path) -> str:
    # The preset makes customer ids "<line>@bank-full", the header being line 1.
    return f"""
        with
        csv_rows as (
            select (row_number() over () + 1)::varchar || '@bank-full' as customer_id, campaign, pdays, previous, poutcome
            from read_csv('{path}', delim = ';', header = true)
        ),
        preset as ({preset_features()})
        select
            preset.*,
            csv_rows.campaign::double as campaign,
            case when csv_rows.pdays >= 0 then csv_rows.pdays end::double as pdays,
            (csv_rows.pdays < 0)::integer as not_contacted_before,
            csv_rows.previous::double as previous,
            {one_hot('csv_rows.poutcome', 'poutcome')}
        from preset
        inner join csv_rows using (customer_id)
    """


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--feature-sets", nargs="+", choices=["preset", "full_csv"], default=["preset", "full_csv"])
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="duckmkt-bank-") as folder:
        con = connect_database(Path(folder) / "bank.duckdb")
        load_files(con, arguments.data, read_mappings(None, preset="bank_marketing"))
        for feature_set in arguments.feature_sets:
            features = preset_features() if feature_set == "preset" else full_csv_features(arguments.data)
            aucs = []
            started = time.perf_counter()
            for fold in range(arguments.folds):
                result = train_response(
                    con,
                    label=LABEL,
                    features=features,
                    models_dir=Path(folder) / "models",
                    name=f"bank_{feature_set}",
                    n_folds=arguments.folds,
                    fold=fold,
                    seed=arguments.seed,
                )
                aucs.append(result.metrics["response_auc"])
                print(
                    f"{feature_set} fold {fold}: AUC {result.metrics['response_auc']:.4f}, "
                    f"ECE {result.metrics['response_ece']:.4f}, lift@10% {result.metrics['response_lift_10']:.2f}"
                )
            seconds = time.perf_counter() - started
            print(
                f"{feature_set}: mean AUC {np.mean(aucs):.4f} (std {np.std(aucs):.4f}) over {arguments.folds} "
                f"stratified folds, target 0.80 {'MET' if np.mean(aucs) >= 0.80 else 'NOT MET'}; {seconds:.0f} s"
            )
        con.close()


if __name__ == "__main__":
    main()
