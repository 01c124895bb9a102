"""Install the SQL files under ``sql/`` into a DuckDB database.

Each file creates one object named after the file, in the schema its folder
implies (``raw`` for ``sql/raw/``, ``mkt`` for the rest). Files are run in
dependency order, found from the ``mkt.<name>`` and ``raw.<name>`` references
in their code (comments are ignored), so adding a view needs no list to be kept up to date.
Installing is idempotent: tables use ``create ... if not exists`` and views
and macros use ``create or replace``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from importlib import resources
from pathlib import Path

import duckdb

from duckmkt.errors import DuckmktError
from duckmkt.i18n import _

logger = logging.getLogger(__name__)


def quote_identifier(name: str) -> str:
    """Return ``name`` as a double-quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'

# Folders in pipeline order; it breaks ties between files with no dependency
# on each other so the install order is stable.
LAYERS = ("raw", "seeds", "staging", "intermediate", "quality", "features", "labels", "actions", "registry")

_REFERENCE = re.compile(r"\b(raw|mkt)\.([a-z_][a-z0-9_]*)\b")
_LINE_COMMENT = re.compile(r"--[^\n]*")


@dataclass(frozen=True)
class SqlFile:
    """One SQL file and the object it creates."""

    path: Path
    layer: str

    @property
    def schema(self) -> str:
        return "raw" if self.layer == "raw" else "mkt"

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.path.stem}"

    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")


def sql_dir() -> Path:
    """Return the folder holding the SQL files.

    An installed wheel carries them as ``duckmkt/sql``; an editable install
    reads the ``sql/`` folder at the top of the repository.
    """
    packaged = Path(str(resources.files("duckmkt"))) / "sql"
    if packaged.is_dir():
        return packaged
    repository = Path(__file__).resolve().parents[2] / "sql"
    if repository.is_dir():
        return repository
    raise DuckmktError(
        _("The SQL folder was not found at {packaged} or {repository}; reinstall duckmkt.").format(packaged=packaged, repository=repository)
    )


def discover(root: Path | None = None) -> list[SqlFile]:
    """List the SQL files under ``root`` in the order they must run."""
    root = sql_dir() if root is None else root
    files = {
        sql_file.name: sql_file
        for layer in LAYERS
        for sql_file in (SqlFile(path, layer) for path in sorted((root / layer).glob("*.sql")))
    }

    graph: dict[str, set[str]] = {}
    for name, sql_file in files.items():
        references = {f"{schema}.{table}" for schema, table in _REFERENCE.findall(_LINE_COMMENT.sub("", sql_file.text()))}
        graph[name] = {ref for ref in references if ref in files and ref != name}

    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as error:
        raise DuckmktError(_("The SQL files reference each other in a cycle: {cycle}.").format(cycle=error.args[1])) from error

    # static_order is a valid order but not a stable one; re-sort by layer and
    # name while keeping every dependency ahead of its users.
    position = {name: index for index, name in enumerate(order)}
    ranked = sorted(files, key=lambda n: (LAYERS.index(files[n].layer), n))
    result: list[str] = []
    placed: set[str] = set()

    def place(name: str) -> None:
        if name in placed:
            return
        for dependency in sorted(graph[name], key=position.__getitem__):
            place(dependency)
        placed.add(name)
        result.append(name)

    for name in ranked:
        place(name)
    return [files[name] for name in result]


def install(con: duckdb.DuckDBPyConnection, root: Path | None = None) -> list[str]:
    """Create the schemas, tables, views and macros; return the object names."""
    con.execute("create schema if not exists raw")
    con.execute("create schema if not exists mkt")

    installed = []
    for sql_file in discover(root):
        logger.debug("Installing %s from %s", sql_file.name, sql_file.path)
        try:
            con.execute(sql_file.text())
        except duckdb.Error as error:
            raise DuckmktError(
                _("Installing {name} from {path} failed: {error}").format(name=sql_file.name, path=sql_file.path, error=error)
            ) from error
        installed.append(sql_file.name)
    return installed


def macros_take_parameter(con: duckdb.DuckDBPyConnection, names: tuple[str, ...], parameter: str) -> bool:
    """Return whether every table macro ``mkt.<name>`` of ``names`` in ``con`` has the parameter ``parameter``.

    A database last opened for writing by an older duckmkt keeps its old
    macros until it is opened for writing again, because a read-only
    connection cannot reinstall them.
    """
    rows = con.execute(
        "select function_name, parameters from duckdb_functions() where schema_name = 'mkt' and function_name in ?",
        [list(names)],
    ).fetchall()
    taking = {name for name, parameters in rows if parameter in parameters}
    return taking == set(names)
