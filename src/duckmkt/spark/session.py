"""Start a local SparkSession configured to match DuckDB's semantics.

Settings that change results:

* ``spark.sql.session.timeZone=UTC``: DuckDB's TIMESTAMP has no time zone;
  with UTC, casts between Spark's TIMESTAMP_NTZ and TIMESTAMP_LTZ keep the
  wall-clock value.
* ``spark.sql.decimalOperations.allowPrecisionLoss=false``: the product of two
  DECIMAL(38, 8) values stays DECIMAL(38, 16) as in DuckDB instead of being
  rounded to 6 decimal places.

Local mode binds the driver to 127.0.0.1 and turns the web UI off, so a test
opens no port on another interface.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import tempfile

from duckmkt.errors import DuckmktError
from duckmkt.i18n import _

logger = logging.getLogger(__name__)

# Settings every duckmkt SparkSession gets; see the module docstring.
RESULT_SETTINGS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.decimalOperations.allowPrecisionLoss": "false",
}

LOCAL_SETTINGS = {
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.adaptive.enabled": "true",
}


def require_pyspark():
    """Import and return ``pyspark``, or raise naming the extra that installs it."""
    try:
        import pyspark
    except ImportError as error:
        raise DuckmktError(
            _("The Spark backend needs PySpark; install it with pip install 'duckmkt[spark]'.")
        ) from error
    return pyspark


def local_session(
    master: str = "local[2]",
    *,
    shuffle_partitions: int = 4,
    driver_memory: str = "1g",
    app_name: str = "duckmkt",
    extra_settings: dict[str, str] | None = None,
):
    """Return a SparkSession in local mode with the duckmkt settings.

    ``shuffle_partitions`` sets ``spark.sql.shuffle.partitions``: Spark's
    default of 200 makes small local jobs slow. ``driver_memory`` only takes
    effect when this call starts the JVM. An already running session is
    returned with the duckmkt settings applied.
    """
    require_pyspark()
    from pyspark.sql import SparkSession

    # The executors' Python must be the one that has duckmkt installed.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

    scratch = tempfile.mkdtemp(prefix="duckmkt-spark-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.driver.memory", driver_memory)
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.sql.warehouse.dir", os.path.join(scratch, "warehouse"))
        .config("spark.local.dir", os.path.join(scratch, "local"))
    )
    for key, value in {**LOCAL_SETTINGS, **RESULT_SETTINGS, **(extra_settings or {})}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    apply_result_settings(session)
    logger.info("Spark %s session on %s", session.version, master)
    return session


def apply_result_settings(session) -> None:
    """Set the options that make Spark's results match DuckDB's on ``session``."""
    for key, value in RESULT_SETTINGS.items():
        session.conf.set(key, value)
