"""The duckmkt SQL objects as Spark temporary views.

Tables (``raw.*`` and the seed tables of ``mkt``) are read from Parquet: one
file or folder per table, named ``<schema>.<table>.parquet``, in a tables
folder. ``export_tables`` writes that folder from a DuckDB database; a larger
deployment points it at the same layout in its data lake. Views and table
macros are translated by ``duckmkt.spark.translate`` on first use and
registered as temporary views, dependencies first. A macro gets one view per
set of bound arguments.

Views of the staging and intermediate layers are cached when they are
created (``CACHE TABLE`` materializes them at once), because every feature and
label macro reads them and Spark would otherwise recompute the cleaning of
every order line for each reference.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import date, timedelta
from pathlib import Path

import duckdb

from duckmkt.errors import DataError, DuckmktError
from duckmkt.i18n import _
from duckmkt.spark.translate import Literal, SqlObject, SparkTranslationError, read_objects, references, spark_view_name, translate

logger = logging.getLogger(__name__)

# Layers whose views are materialized in Spark's cache; see the module docstring.
CACHED_LAYERS = ("staging", "intermediate")


def table_file(tables_dir: Path, name: str) -> Path:
    """Return where the Parquet data of table ``name`` (``schema.table``) lives."""
    return Path(tables_dir) / f"{name}.parquet"


def export_tables(con: duckdb.DuckDBPyConnection, tables_dir: str | Path) -> list[str]:
    """Write every table of the SQL folder that exists in ``con`` to Parquet under ``tables_dir``; return their names."""
    tables_dir = Path(tables_dir)
    tables_dir.mkdir(parents=True, exist_ok=True)
    existing = {
        f"{schema}.{table}"
        for schema, table in con.execute(
            "select schema_name, table_name from duckdb_tables() where database_name = current_database()"
        ).fetchall()
    }
    written = []
    for name, sql_object in read_objects().items():
        if sql_object.kind != "table" or name not in existing:
            continue
        target = table_file(tables_dir, name)
        con.execute(f"copy (select * from {name}) to '{target}' (format parquet)")
        written.append(name)
    logger.info("Exported %d tables to %s", len(written), tables_dir)
    return written


class SparkCatalog:
    """Create the duckmkt views in a SparkSession on demand.

    ``view(name)`` returns the Spark view name of a DuckDB view or table,
    ``macro(name, *values)`` that of a table macro with its arguments bound.
    """

    def __init__(
        self,
        session,
        tables_dir: str | Path,
        objects: dict[str, SqlObject] | None = None,
        cached_layers: tuple[str, ...] = CACHED_LAYERS,
    ):
        self.session = session
        self.tables_dir = Path(tables_dir)
        self.objects = read_objects() if objects is None else objects
        self.cached_layers = cached_layers
        self._views: dict[tuple[str, tuple[Literal, ...]], str] = {}

    def _object(self, name: str) -> SqlObject:
        try:
            return self.objects[name]
        except KeyError:
            raise DuckmktError(
                _("{name} is not an object of the SQL folder; choose one of: {names}.").format(
                    name=name, names=", ".join(sorted(self.objects))
                )
            ) from None

    def view(self, name: str) -> str:
        """Create the Spark view of table or view ``name`` and what it reads; return the view name."""
        sql_object = self._object(name)
        if sql_object.kind == "macro":
            raise DuckmktError(
                _("{name} is a table macro with the parameters ({parameters}); call macro() with their values.").format(
                    name=name, parameters=", ".join(sql_object.parameters)
                )
            )
        return self._create(sql_object, ())

    def macro(self, name: str, *values: Literal) -> str:
        """Create the Spark view of table macro ``name`` with ``values`` bound; return the view name."""
        sql_object = self._object(name)
        if sql_object.kind != "macro" or not len(sql_object.required) <= len(values) <= len(sql_object.parameters):
            raise DuckmktError(
                _("{name} takes the parameters ({parameters}); got {count} values.").format(
                    name=name, parameters=", ".join(sql_object.parameters), count=len(values)
                )
            )
        return self._create(sql_object, tuple(values))

    def uncache(self) -> None:
        """Drop the cached views of this catalog from Spark's cache."""
        for (name, _values), view_name in self._views.items():
            if self.objects[name].layer in self.cached_layers and self.objects[name].kind == "view":
                self.session.catalog.uncacheTable(view_name)

    def dataframe(self, name: str, *values: Literal):
        """Return the Spark DataFrame of a table, view or macro (with ``values`` bound)."""
        view_name = self.macro(name, *values) if values else self.view(name)
        return self.session.table(view_name)

    def _create(self, sql_object: SqlObject, values: tuple[Literal, ...]) -> str:
        key = (sql_object.name, values)
        if key in self._views:
            return self._views[key]

        if sql_object.kind == "table":
            view_name = self._register_table(sql_object)
        else:
            for dependency in sorted(references(sql_object)):
                dependency_object = self._object(dependency)
                if dependency_object.kind != "macro":
                    self._create(dependency_object, ())
            arguments = dict(zip(sql_object.parameters, values))
            query = translate(sql_object, arguments, resolve_call=lambda name, args: self.macro(name, *args))
            view_name = spark_view_name(sql_object.name)
            if values:
                digest = hashlib.sha1(repr(values).encode()).hexdigest()[:12]
                view_name = f"{view_name}__{digest}"
            logger.debug("Spark SQL of %s%s: %s", sql_object.name, values or "", query)
            try:
                self.session.sql(f"create or replace temporary view {view_name} as {query}")
            except Exception as error:  # pyspark raises AnalysisException and others without a common base
                raise SparkTranslationError(
                    _("Spark rejected the translated SQL of {name}: {error}").format(
                        name=sql_object.name, error=str(error).splitlines()[0]
                    )
                ) from error
            if sql_object.layer in self.cached_layers:
                self.session.sql(f"cache table {view_name}")
        self._views[key] = view_name
        return view_name

    def _register_table(self, sql_object: SqlObject) -> str:
        path = table_file(self.tables_dir, sql_object.name)
        if not path.exists():
            raise DataError(
                _("The Parquet data of table {name} was not found at {path}; write it with 'duckmkt spark-export DB {folder}'.").format(
                    name=sql_object.name, path=path, folder=self.tables_dir
                )
            )
        view_name = spark_view_name(sql_object.name)
        self.session.read.parquet(str(path)).createOrReplaceTempView(view_name)
        return view_name

    # --- the objects the pipeline reads ------------------------------------

    def customer_features_at(self, cutoff: date):
        """Return the DataFrame of ``mkt.customer_features_at(cutoff)``."""
        return self.dataframe("mkt.customer_features_at", cutoff)

    def customer_labels_at(self, cutoff: date, horizon_days: int, churn_horizon_days: int):
        """Return the DataFrame of ``mkt.customer_labels_at(cutoff, horizon_days, churn_horizon_days)``."""
        return self.dataframe("mkt.customer_labels_at", cutoff, int(horizon_days), int(churn_horizon_days))

    def sale_day_range(self) -> tuple[date, date]:
        """Return the days of the first and the latest sale in ``mkt.int_orders``."""
        orders = self.view("mkt.int_orders")
        row = self.session.sql(f"select min(ordered_at), max(ordered_at) from {orders}").collect()[0]
        if row[0] is None:
            raise DataError(_("The Spark tables have no sales; export a database with loaded order lines first."))
        return row[0].date(), row[1].date()

    def default_cutoff(self) -> date:
        """Return the cutoff of ``mkt.customer_features``: the day after the latest sale."""
        return self.sale_day_range()[1] + timedelta(days=1)
