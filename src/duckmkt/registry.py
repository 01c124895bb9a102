"""Model folders: ``<models_dir>/<name>/<version>/`` with model.onnx, metadata.json and report.json.

A version folder is written whole into a hidden temporary sibling and then
renamed into place, so a reader sees either no folder or a complete one.
Nothing is pickled: the model is ONNX and everything else is JSON.

metadata.json records the sha256 of model.onnx, and ``metadata.json.sha256``
(the ``sha256sum`` format) records the sha256 of metadata.json, so
``verify_model`` rejects an edited or damaged file of either kind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb

from duckmkt.errors import ModelError
from duckmkt.i18n import _

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MODEL_FILE = "model.onnx"
METADATA_FILE = "metadata.json"
REPORT_FILE = "report.json"
METADATA_CHECKSUM_FILE = METADATA_FILE + ".sha256"
VERSION_FORMAT = "%Y%m%dT%H%M%SZ"

# Model names become folder names and appear in SQL text, so they are
# restricted to letters, digits, '-' and '_', starting with a letter or digit.
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")

REQUIRED_METADATA = ("format_version", "name", "version", "feature_names", "input_name", "output_names", "onnx_sha256")

# Tries at taking a free version folder before giving up; each try moves the
# timestamp one second on.
_MAX_VERSION_TRIES = 100


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _json_bytes(document: Mapping) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=False, allow_nan=False) + "\n").encode("utf-8")


def _checksum_line(data: bytes) -> bytes:
    return f"{sha256_bytes(data)}  {METADATA_FILE}\n".encode("ascii")


def check_model_name(name: str) -> str:
    """Return ``name`` when it is a valid model name, else raise ModelError."""
    if not isinstance(name, str) or not _MODEL_NAME.match(name):
        raise ModelError(
            _("Invalid model name {name!r}; use 1 to 100 letters, digits, '-' or '_', starting with a letter or digit.").format(
                name=name
            )
        )
    return name


def write_metadata(model_dir: str | Path, metadata: Mapping[str, object]) -> None:
    """Replace metadata.json of a model folder and its checksum file.

    For tools that re-version a copied model; training writes both through
    ``save_model``. The model.onnx checksum inside ``metadata`` is not changed.
    """
    model_dir = Path(model_dir)
    data = _json_bytes(metadata)
    _write_file(model_dir / METADATA_FILE, data)
    _write_file(model_dir / METADATA_CHECKSUM_FILE, _checksum_line(data))


def save_model(
    models_dir: str | Path,
    name: str,
    onnx_bytes: bytes,
    metadata: Mapping[str, object],
    report: Mapping[str, object],
    *,
    now: datetime | None = None,
) -> Path:
    """Write a new version folder of model ``name`` and return its path.

    Sets ``format_version``, ``name``, ``version``, ``created_at`` and
    ``onnx_sha256`` in the metadata. The version is the UTC time as
    YYYYMMDDTHHMMSSZ; when that folder exists the next free second is taken.
    Raises ModelError when the folder cannot be written.
    """
    check_model_name(name)
    root = Path(models_dir) / name
    now = datetime.now(timezone.utc) if now is None else now
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ModelError(_("Could not create the model folder {path}: {error}").format(path=root, error=error)) from error

    for attempt in range(_MAX_VERSION_TRIES):
        created_at = now + timedelta(seconds=attempt)
        version = created_at.strftime(VERSION_FORMAT)
        target = root / version
        if target.exists():
            continue
        document = {
            "format_version": FORMAT_VERSION,
            "name": name,
            "version": version,
            "created_at": created_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
            **{key: value for key, value in metadata.items() if key not in ("format_version", "name", "version", "created_at")},
            "onnx_sha256": sha256_bytes(onnx_bytes),
        }
        report_document = {"name": name, "version": version, **report}
        if _write_version(root, target, onnx_bytes, document, report_document):
            logger.info("Saved model %s version %s to %s", name, version, target)
            return target

    raise ModelError(
        _("Could not find a free version folder under {root} after {tries} tries; remove stale folders and retry.").format(
            root=root, tries=_MAX_VERSION_TRIES
        )
    )


def _write_version(root: Path, target: Path, onnx_bytes: bytes, metadata: dict, report: dict) -> bool:
    """Write the files into a temporary folder and rename it to ``target``; False when ``target`` was taken meanwhile."""
    # A leading dot keeps the unfinished folder out of version listings, and
    # the same parent keeps the rename on one file system.
    temporary = root / f".{target.name}.{uuid.uuid4().hex}.tmp"
    try:
        temporary.mkdir()
        _write_file(temporary / MODEL_FILE, onnx_bytes)
        _write_file(temporary / REPORT_FILE, _json_bytes(report))
        # metadata.json last: readers treat a folder with it as a model.
        metadata_bytes = _json_bytes(metadata)
        _write_file(temporary / METADATA_CHECKSUM_FILE, _checksum_line(metadata_bytes))
        _write_file(temporary / METADATA_FILE, metadata_bytes)
        _fsync_dir(temporary)
        try:
            # On POSIX, renaming onto a folder that is not empty fails, so a
            # concurrent writer of the same version is never overwritten.
            os.rename(temporary, target)
        except OSError:
            if target.exists():
                shutil.rmtree(temporary, ignore_errors=True)
                return False
            raise
        _fsync_dir(root)
        return True
    except OSError as error:
        shutil.rmtree(temporary, ignore_errors=True)
        raise ModelError(_("Could not write the model folder {path}: {error}").format(path=target, error=error)) from error


def load_metadata(path: str | Path) -> dict:
    """Read ``metadata.json`` from a model folder (or the file itself) and check its required keys."""
    path = Path(path)
    metadata_path = path / METADATA_FILE if path.is_dir() else path
    try:
        document = json.loads(metadata_path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ModelError(
            _("Model metadata {path} not found; train a model with 'duckmkt train' or give a model folder.").format(
                path=metadata_path
            )
        ) from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(
            _("Model metadata {path} is unreadable: {error}; retrain the model.").format(path=metadata_path, error=error)
        ) from error

    if not isinstance(document, dict):
        raise ModelError(_("Model metadata {path} is not a JSON object; retrain the model.").format(path=metadata_path))
    missing = [key for key in REQUIRED_METADATA if key not in document]
    if missing:
        raise ModelError(
            _("Model metadata {path} lacks the keys {keys}; retrain the model.").format(path=metadata_path, keys=", ".join(missing))
        )
    if document["format_version"] != FORMAT_VERSION:
        raise ModelError(
            _("Model metadata {path} has format_version {found}; this duckmkt reads version {expected}, so retrain the model.").format(
                path=metadata_path, found=document["format_version"], expected=FORMAT_VERSION
            )
        )
    return document


def verify_metadata_checksum(model_dir: str | Path) -> None:
    """Check that metadata.json matches the sha256 in metadata.json.sha256; raise ModelError if not."""
    model_dir = Path(model_dir)
    checksum_path = model_dir / METADATA_CHECKSUM_FILE
    try:
        recorded = checksum_path.read_text(encoding="ascii").split()
    except FileNotFoundError as error:
        raise ModelError(
            _(
                "Model checksum file {path} not found; the model was saved by an older duckmkt or damaged, so retrain it."
            ).format(path=checksum_path)
        ) from error
    except (OSError, UnicodeDecodeError) as error:
        raise ModelError(
            _("Model checksum file {path} is unreadable: {error}; retrain the model.").format(path=checksum_path, error=error)
        ) from error

    actual = sha256_file(model_dir / METADATA_FILE)
    expected = recorded[0] if recorded else ""
    if actual != expected:
        raise ModelError(
            _(
                "Model metadata {path} has sha256 {actual}, but {checksum} records {expected}; "
                "the file was changed or damaged, so retrain or restore the model."
            ).format(path=model_dir / METADATA_FILE, actual=actual, checksum=checksum_path.name, expected=expected or "nothing")
        )


def verify_model(model_dir: str | Path) -> dict:
    """Check model.onnx and metadata.json against their recorded sha256; return the metadata.

    Raises ModelError when a file is missing or a checksum differs.
    """
    model_dir = Path(model_dir)
    metadata = load_metadata(model_dir)
    verify_metadata_checksum(model_dir)
    model_path = model_dir / MODEL_FILE
    if not model_path.is_file():
        raise ModelError(_("Model file {path} not found; retrain the model.").format(path=model_path))

    actual = sha256_file(model_path)
    expected = metadata["onnx_sha256"]
    if actual != expected:
        raise ModelError(
            _(
                "Model file {path} has sha256 {actual}, but its metadata records {expected}; "
                "the file was changed or damaged, so retrain or restore the model."
            ).format(path=model_path, actual=actual, expected=expected)
        )
    return metadata


# Statuses of a version in mkt.models.
CANDIDATE = "candidate"
PROMOTED = "promoted"
ARCHIVED = "archived"
ROLLED_BACK = "rolled_back"


def record_model(con, model_dir: str | Path) -> dict:
    """Insert the verified model version in ``model_dir`` into ``mkt.models`` as a candidate; return its metadata.

    Recording a version that is already there updates nothing and keeps its status.
    """
    model_dir = Path(model_dir).resolve()
    metadata = verify_model(model_dir)
    train_cutoffs = metadata.get("train_cutoffs") or [metadata.get("train_cutoff")]
    con.execute(
        """
        insert into mkt.models
            (name, version, created_at, model_kind, model_dir, train_cutoffs, validation_cutoff,
             horizon_days, metrics, onnx_sha256, status)
        values (?, ?, ?::timestamp, ?, ?, ?, ?::date, ?, ?::json, ?, ?)
        on conflict (name, version) do nothing
        """,
        [
            metadata["name"],
            metadata["version"],
            str(metadata.get("created_at", "")).rstrip("Z"),
            model_kind(metadata),
            str(model_dir),
            [cutoff for cutoff in train_cutoffs if cutoff],
            metadata.get("validation_cutoff"),
            metadata.get("horizon_days"),
            json.dumps(metadata.get("metrics", {}), allow_nan=True),
            metadata["onnx_sha256"],
            CANDIDATE,
        ],
    ).fetchall()
    return metadata


def model_kind(metadata: Mapping[str, object]) -> str:
    """Return the kind of a model from its metadata: customer, response or recommender."""
    # Recommenders saved before they had model_kind record their kind as "kind".
    return str(metadata.get("model_kind") or metadata.get("kind") or "customer")


def list_models(con, name: str | None = None) -> list[tuple]:
    """Return (name, version, created_at, model_kind, status, train_cutoffs, validation_cutoff) rows, newest first."""
    return con.execute(
        """
        select name, version, created_at, model_kind, status, train_cutoffs, validation_cutoff
        from mkt.models
        where $name is null or name = $name
        order by name, version desc
        """,
        {"name": name},
    ).fetchall()


def model_row(con, name: str, version: str) -> dict:
    """Return the ``mkt.models`` row of one version as a dict, or raise ModelError when it is not recorded."""
    relation = con.execute("select * from mkt.models where name = ? and version = ?", [name, version])
    columns = [column[0] for column in relation.description]
    rows = relation.fetchall()
    if not rows:
        raise ModelError(
            _("Model {name} version {version} is not in mkt.models; list the versions with 'duckmkt models list DB'.").format(
                name=name, version=version
            )
        )
    return dict(zip(columns, rows[0]))


def promoted_version(con, name: str) -> str | None:
    """Return the promoted version of ``name``, or None when none is promoted or the table is missing."""
    try:
        rows = con.execute(
            "select version from mkt.models where name = ? and status = ? order by version desc", [name, PROMOTED]
        ).fetchall()
    except duckdb.CatalogException as error:
        # A database created before the registry tables existed.
        logger.debug("No model registry table in this database: %s", error)
        return None
    return rows[0][0] if rows else None


def promote(con, name: str, version: str, *, models_dir: str | Path | None = None) -> dict:
    """Make ``version`` the promoted version of ``name``; the previously promoted one becomes archived.

    A version not yet in ``mkt.models`` is recorded first from
    ``<models_dir>/<name>/<version>``. The model's sha256 is checked before
    promotion. Returns the promoted row.
    """
    if models_dir is not None and not _is_recorded(con, name, version):
        record_model(con, Path(models_dir) / name / version)
    row = model_row(con, name, version)
    verify_model(row["model_dir"])

    con.execute("begin transaction")
    try:
        con.execute(
            "update mkt.models set status = ? where name = ? and status = ? and version <> ?",
            [ARCHIVED, name, PROMOTED, version],
        ).fetchall()
        con.execute("update mkt.models set status = ? where name = ? and version = ?", [PROMOTED, name, version]).fetchall()
        _log_action(con, name, version, "promote")
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    logger.info("Promoted model %s version %s", name, version)
    return model_row(con, name, version)


def rollback(con, name: str) -> dict:
    """Demote the promoted version of ``name`` to rolled_back and promote the version promoted before it.

    Raises ModelError when nothing is promoted or no earlier promoted version remains.
    """
    current = promoted_version(con, name)
    if current is None:
        raise ModelError(
            _("Model {name} has no promoted version to roll back; promote one with 'duckmkt models promote'.").format(name=name)
        )
    history = con.execute(
        """
        select version
        from mkt.model_promotions
        where name = ? and action = 'promote' and version <> ?
        order by happened_at desc, rowid desc
        """,
        [name, current],
    ).fetchall()
    statuses = dict(con.execute("select version, status from mkt.models where name = ?", [name]).fetchall())
    previous = next((version for (version,) in history if statuses.get(version) == ARCHIVED), None)
    if previous is None:
        raise ModelError(
            _("Model {name} has no earlier promoted version to roll back to from {version}; promote another version instead.").format(
                name=name, version=current
            )
        )
    verify_model(model_row(con, name, previous)["model_dir"])

    con.execute("begin transaction")
    try:
        con.execute("update mkt.models set status = ? where name = ? and version = ?", [ROLLED_BACK, name, current]).fetchall()
        con.execute("update mkt.models set status = ? where name = ? and version = ?", [PROMOTED, name, previous]).fetchall()
        _log_action(con, name, previous, "rollback")
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    logger.info("Rolled model %s back from version %s to %s", name, current, previous)
    return model_row(con, name, previous)


def _is_recorded(con, name: str, version: str) -> bool:
    return bool(con.execute("select count(*) from mkt.models where name = ? and version = ?", [name, version]).fetchall()[0][0])


def _log_action(con, name: str, version: str, action: str) -> None:
    con.execute(
        "insert into mkt.model_promotions values (?, ?, ?, ?)",
        [name, version, action, datetime.now(timezone.utc).replace(tzinfo=None)],
    ).fetchall()
