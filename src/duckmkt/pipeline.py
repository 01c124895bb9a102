"""The work behind each core ``duckmkt`` command, callable without the CLI.

Each function runs one step, prints its results in the active language and
raises ``DuckmktError`` on failure; ``duckmkt.commands`` only parses options.
"""

from __future__ import annotations

import logging
import shutil
import time
from datetime import date
from importlib import resources
from pathlib import Path

import typer

from duckmkt import data_quality, loading
from duckmkt.database import check_not_locked, connect_database
from duckmkt.errors import DuckmktError, InputFileError
from duckmkt.loading.loader import check_load_options
from duckmkt.i18n import N_, _
from duckmkt.tables import format_table

logger = logging.getLogger(__name__)

EMBEDDED_DATA = "online_retail_excerpt.parquet"


SCORE_QUERY = """with scored as (
    select customer_id, score_customer(f) as score
    from mkt.customer_features f
)
select customer_id, score
from scored
order by score.expected_spend desc
limit {limit}"""


def echo(text: str = "") -> None:
    typer.echo(text)


def load_command(
    db: Path,
    file: Path,
    *,
    kind: str | None = None,
    preset: str | None = None,
    mapping: Path | None = None,
    encoding: str | None = None,
    date_format: str | None = None,
    timezone: str | None = None,
    delimiter: str | None = None,
    hash_ids: bool = False,
    id_key_file: Path | None = None,
    replace: bool = False,
) -> list[loading.LoadReport]:
    """Load ``file`` into ``db`` and print one report per record kind.

    A preset or mapping file may cover several kinds (Bank Marketing gives
    customers and interactions); every part is loaded from one read of the file.
    With ``hash_ids`` (or a key file) customer ids are stored as keyed hashes.
    With ``replace`` an earlier load of the same file is deleted and the file
    loaded again.
    """
    options = {
        "encoding": encoding, "date_format": date_format, "timezone": timezone, "delimiter": delimiter, "replace": replace,
    }
    if hash_ids or id_key_file is not None:
        from duckmkt.loading.hashing import read_id_key

        # Read before the database is opened, so a missing key changes nothing.
        options["id_key"] = read_id_key(id_key_file)
    # Checked before the database is opened, so a mistyped file name or
    # option leaves no empty database behind.
    if Path(file).is_dir():
        raise InputFileError(_("{path} is a folder; give the path of a file in it.").format(path=file))
    if not Path(file).is_file():
        raise InputFileError(_("Input file {path} not found.").format(path=file))
    check_load_options(date_format=date_format, delimiter=delimiter)

    created = not Path(db).exists()
    try:
        reports = _load_into(db, file, kind=kind, preset=preset, mapping=mapping, options=options)
    except BaseException:
        # BaseException, so that Ctrl-C during a first load also removes the file.
        if created:
            remove_database_file(db)
        raise
    failed = [report for report in reports if report.n_rows_read > 0 and report.n_rows_rejected == report.n_rows_read]
    removed = bool(failed) and created
    if removed:
        remove_database_file(db)

    for report in reports:
        echo(report.summary(rejected_rows_kept=not removed))
        if report.kind == "orders" and report.line_status_counts:
            print_line_statuses(report.line_status_counts)
    if removed:
        raise InputFileError(
            _("{file}: every {kind} row was rejected, so {db}, which this load created, was removed again; fix the cause shown above (for example --date-format or --preset) and load the file again.").format(
                file=Path(file).name, kind=failed[0].kind, db=db
            )
        )
    if failed:
        # The rejected rows are kept, and the next load of the same file is
        # not skipped, so the user can fix the option and rerun.
        raise InputFileError(
            _("{file}: every {kind} row was rejected, so nothing was loaded; see mkt.rejected_rows for the reasons, fix the cause (for example --date-format or --preset) and load the file again.").format(
                file=Path(file).name, kind=failed[0].kind
            )
        )
    return reports


def _load_into(
    db: Path, file: Path, *, kind: str | None, preset: str | None, mapping: Path | None, options: dict[str, object]
) -> list[loading.LoadReport]:
    """Open ``db`` (created when missing), load ``file`` and return one report per record kind.

    Without ``kind``, a preset or a mapping, a file whose header matches every
    part of one preset is loaded with that whole preset, as ``--preset`` would,
    so that the Online Retail file gives products as well as orders.
    """
    mappings = None
    if preset is not None or mapping is not None:
        mappings = loading.read_mappings(mapping, preset=preset)
    elif kind is None:
        mappings = loading.guess_mappings(file, None, encoding=options["encoding"], delimiter=options["delimiter"])
        if len(mappings) > 1:
            echo(
                _("The columns of {file} match the preset {preset}, which loads {kinds}; loading all of them (give --kind to load one kind).").format(
                    file=Path(file).name, preset=mappings[0].name, kinds=", ".join(part.kind for part in mappings)
                )
            )
    con = connect_database(db)
    try:
        if mappings is not None:
            return loading.load_files(con, file, mappings, **options)
        return [loading.load_file(con, file, kind=kind, **options)]
    finally:
        con.close()


def remove_database_file(db: Path) -> None:
    """Delete the database file ``db`` and its write-ahead log; call it only on a file this run created."""
    for path in (Path(db), Path(f"{db}.wal")):
        try:
            path.unlink(missing_ok=True)
        except OSError as error:
            logger.warning(_("Could not remove %s: %s; delete it by hand."), path, error)


def print_line_statuses(counts: dict[str, int]) -> None:
    rows = [(status, _(status_description(status)), count) for status, count in sorted(counts.items())]
    echo(format_table([_("line status"), _("meaning"), _("rows")], rows))


def status_description(status: str) -> str:
    """Return the English description of a line status (translated by the caller)."""
    return {
        "sale": N_("product sale, used for features"),
        "duplicate": N_("exact duplicate of an earlier line, dropped"),
        "invalid": N_("a value could not be typed, dropped"),
        "missing_customer": N_("no customer id, dropped"),
        "cancellation": N_("cancelled order line, used for the return rate"),
        "return": N_("returned items, used for the return rate"),
        "non_product": N_("postage, fee, discount or adjustment, dropped"),
        "zero_price": N_("zero or negative unit price, dropped"),
    }.get(status, status)


def quality_command(db: Path) -> data_quality.QualityReport:
    """Print what the loads of ``db`` kept, dropped and rejected (see ``duckmkt.data_quality``)."""
    con = connect_database(db, create=False)
    try:
        report = data_quality.read_quality(con)
    finally:
        con.close()
    echo(data_quality.format_quality(report, status_description))
    return report


def train_command(
    db: Path,
    *,
    name: str = "customer",
    models_dir: Path = Path("models"),
    horizon_days: int | None = None,
    churn_horizon_days: int | None = None,
    train_cutoff: date | None = None,
    validation_cutoff: date | None = None,
    epochs: int | None = None,
    seed: int = 0,
    n_train_cutoffs: int = 1,
    cutoff_step_days: int | None = None,
    time_budget_seconds: float | None = None,
    label: str | None = None,
    features: str | None = None,
):
    """Train, export and save a model from the data in ``db``, record it in ``mkt.models``; print its metrics.

    With ``label`` a response model is trained on that label instead of the customer model.
    """
    try:
        from duckmkt import training
    except ImportError as error:
        raise DuckmktError(
            _("Training needs TensorFlow and tf2onnx, which are not installed ({error}); install them with: pip install 'duckmkt[train]'").format(
                error=error
            )
        ) from error

    options = {"epochs": epochs} if epochs is not None else {}
    if label is not None:
        from duckmkt.model_quality import train_response_command

        return train_response_command(
            db,
            label=label,
            features=features,
            # A response model under the customer model's name would replace it in scoring.
            name="response" if name == "customer" else name,
            models_dir=models_dir,
            seed=seed,
            **options,
        )
    con = connect_database(db, create=False)
    started = time.perf_counter()
    try:
        result = training.train(
            con,
            models_dir=models_dir,
            name=name,
            horizon_days=horizon_days,
            churn_horizon_days=churn_horizon_days,
            train_cutoff=train_cutoff,
            validation_cutoff=validation_cutoff,
            seed=seed,
            progress=print_progress,
            n_train_cutoffs=n_train_cutoffs,
            cutoff_step_days=cutoff_step_days,
            time_budget_seconds=time_budget_seconds,
            **options,
        )
        from duckmkt.registry import promoted_version, record_model

        record_model(con, result.model_dir)
        promoted = promoted_version(con, name)
    finally:
        con.close()
    print_training_result(result, time.perf_counter() - started)
    if promoted is not None and promoted != result.version:
        # The compiled SQL scorer must score with the model score_customer
        # uses, so a candidate waits for 'duckmkt models promote'.
        echo(
            _(
                "Version {promoted} of model {name} stays promoted: score_customer and mkt.customer_predictions keep "
                "using it. To use version {version}, run: duckmkt models promote {db} {version} --name {name}"
            ).format(promoted=promoted, name=name, version=result.version, db=db)
        )
        return result
    from duckmkt.clients import compile_after_training

    compile_after_training(db, result.model_dir)
    return result


def print_progress(progress) -> None:
    """Print one line per epoch (``progress`` is a duckmkt.training.EpochProgress)."""
    echo(progress.message())


def print_training_result(result, seconds: float) -> None:
    """Print the settings, the metrics beside their baselines and the model folder."""
    echo()
    echo(_("Settings (* = default derived from the data):"))
    settings = [
        (name + (" *" if name in result.derived_settings else ""), str(value)) for name, value in result.settings.items()
    ]
    echo(format_table([_("setting"), _("value")], settings))
    echo(
        _("{train:,} training rows, {validation:,} out-of-time validation rows; best epoch {best} of {epochs}.").format(
            train=result.n_train_rows, validation=result.n_validation_rows, best=result.best_epoch, epochs=result.n_epochs
        )
    )
    echo()
    echo(_("Validation metrics on the out-of-time rows, beside baselines on the same rows:"))
    rows = [
        (metric, model_value, baseline_value, _("yes") if better else _("no"))
        for metric, model_value, baseline_value, better in result.comparison()
    ]
    echo(format_table([_("metric"), _("model"), _("baseline"), _("model better")], rows))
    echo(_("Baselines: logistic regression on RFM for purchase and churn; spend in the previous window of the same length for spend."))
    warn_far_worse_than_baseline(result.metrics, result.baselines)
    echo(_("ONNX Runtime matches Keras within {difference:.2g}.").format(difference=result.parity_max_abs_diff))
    echo()
    echo(_("Model saved to {path} in {seconds:.0f} s.").format(path=result.model_dir, seconds=seconds))


def warn_far_worse_than_baseline(metrics: dict[str, float], baselines: dict[str, float]) -> list[str]:
    """Warn when an error metric is at least FAR_WORSE_RATIO times the baseline's (see ``model_checks``); return those metrics."""
    from duckmkt import model_checks

    far_worse = model_checks.far_worse_metrics(metrics, baselines)
    if far_worse:
        logger.warning(
            _("The model's %s, so its predictions are not usable. Commands that pick the newest version skip this one unless you name it with --model; train again with more epochs (the default is 200, with early stopping)."),
            model_checks.describe(far_worse),
        )
    return [metric for metric, _model, _baseline in far_worse]


def score_command(
    db: Path,
    *,
    model: str | None = None,
    name: str = "customer",
    models_dir: Path = Path("models"),
    limit: int = 10,
    changed: bool = False,
) -> int:
    """Score the customers of ``db`` into ``mkt.customer_scores`` and print a summary.

    With ``changed`` only customers whose features, model or rules changed
    since the last run are scored. Returns the number of customers scored.
    """
    from duckmkt.scores import materialize_scores, strategy_summary
    from duckmkt.scoring import register

    con = connect_database(db, create=False)
    try:
        scorer = register(con, model, models_dir=models_dir, name=name)
        _print_model_folder(scorer, model, models_dir, name)
        run = materialize_scores(con, model_version=scorer.version, changed=changed)
        print_score_sample(con, limit)
        print_strategy_summary(strategy_summary(con))
    finally:
        con.close()
    if changed:
        echo(
            _("{scored:,} customers scored, {unchanged:,} unchanged and {removed:,} removed in mkt.customer_scores.").format(
                scored=run.n_scored, unchanged=run.n_unchanged, removed=run.n_removed
            )
        )
    else:
        echo(_("{count:,} customers scored into mkt.customer_scores.").format(count=run.n_scored))
    return run.n_scored


def _print_model_folder(scorer, model: str | None, models_dir: Path, name: str) -> None:
    """Print the model version and folder used, and a note when the folder is not under ``models_dir``.

    ``resolve_model_dir`` falls back to the folder recorded in ``mkt.models``,
    so without this line a mistyped ``--models-dir`` would go unnoticed.
    """
    folder = scorer.model_dir.absolute()
    echo(
        _("Scoring with model {name} version {version} from {folder}.").format(
            name=scorer.metadata.get("name"), version=scorer.version, folder=folder
        )
    )
    note_recorded_model_folder(scorer, model, models_dir, name)


def note_recorded_model_folder(scorer, model: str | None, models_dir: Path, name: str) -> None:
    """Print a note when the model's folder is not under ``models_dir``: it came from ``mkt.models``."""
    given_folder = model is not None and Path(model).is_dir()
    if not given_folder and scorer.model_dir.absolute().parent.resolve() != (Path(models_dir) / name).resolve():
        echo(
            _("{models_dir} has no version {version} of model {name}, so the folder recorded in mkt.models is used.").format(
                models_dir=models_dir, version=scorer.version, name=name
            )
        )


def print_score_sample(con, limit: int) -> None:
    """Run the documented scoring query and print its first rows."""
    query = SCORE_QUERY.format(limit=int(limit))
    echo(_("SQL:"))
    echo(query)
    rows = con.execute(query).fetchall()
    table = [
        (customer_id, score["purchase_prob"], score["expected_spend"], score["churn_risk"], score["strategy"])
        for customer_id, score in rows
    ]
    echo(format_table(["customer_id", "purchase_prob", "expected_spend", "churn_risk", "strategy"], table))
    echo()


def print_strategy_summary(rows: list[tuple]) -> None:
    from duckmkt.i18n import get_language
    from duckmkt.strategy import STRATEGIES

    def label(code: str, label_en: str | None, label_zh: str | None) -> str:
        # The labels analysts set in mkt.strategy_rules come first; the
        # built-in ones cover codes without a rule, such as 'unassigned'.
        chosen = label_zh if get_language() == "zh" else label_en
        if chosen:
            return chosen
        return STRATEGIES[code].localized_label() if code in STRATEGIES else code

    table = [
        (code, label(code, label_en, label_zh), n, prob, spend, churn)
        for code, label_en, label_zh, n, prob, spend, churn in rows
    ]
    echo(_("Customers per strategy:"))
    echo(
        format_table(
            [_("strategy"), _("label"), _("customers"), _("mean purchase_prob"), _("total expected_spend"), _("mean churn_risk")],
            table,
        )
    )
    echo()


def demo_command(db: Path, *, models_dir: Path = Path("models"), epochs: int | None = None) -> None:
    """Build ``db`` from the embedded Online Retail excerpt, train, and score."""
    db = Path(db)
    if db.exists():
        # Unlinking a file that another program has open would succeed on
        # Linux and leave that program writing to a deleted file.
        check_not_locked(db)
        db.unlink()
        echo(_("Replacing {db}.").format(db=db))
    db.parent.mkdir(parents=True, exist_ok=True)
    data = Path(str(resources.files("duckmkt") / "data" / EMBEDDED_DATA))

    echo(_("Step 1/4: load the embedded Online Retail excerpt (CC BY 4.0, UCI id 352) into {db}").format(db=db))
    load_command(db, data, preset="online_retail")
    echo()
    echo(_("Step 2/4: data-quality counts"))
    quality_command(db)
    echo()
    echo(_("Step 3/4: train the model (models folder: {models_dir})").format(models_dir=models_dir))
    result = train_command(db, models_dir=models_dir, epochs=epochs)
    echo()
    echo(_("Step 4/4: score every customer in SQL"))
    score_command(db, model=str(result.model_dir), models_dir=models_dir)
