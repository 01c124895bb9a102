"""Model folders: ``<models_dir>/<name>/<version>/`` with model.onnx, metadata.json and report.json.

A version folder is written whole into a hidden temporary sibling and then
renamed into place, so a reader sees either no folder or a complete one.
Nothing is pickled: the model is ONNX and everything else is JSON.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path

from duckmkt.errors import ModelError
from duckmkt.i18n import _

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MODEL_FILE = "model.onnx"
METADATA_FILE = "metadata.json"
REPORT_FILE = "report.json"
VERSION_FORMAT = "%Y%m%dT%H%M%SZ"

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
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
        raise ModelError(_("Invalid model name {name!r}; use letters, digits, '-' or '_'.").format(name=name))

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
        _write_file(temporary / METADATA_FILE, _json_bytes(metadata))
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


def verify_model(model_dir: str | Path) -> dict:
    """Check that model.onnx matches the sha256 in metadata.json; return the metadata.

    Raises ModelError when a file is missing or the checksum differs.
    """
    model_dir = Path(model_dir)
    metadata = load_metadata(model_dir)
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
