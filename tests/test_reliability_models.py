"""Model folders: tampered files are rejected, and nothing is stored in a code-executing format."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import duckdb
import onnx
import pytest

from duckmkt import registry, sql_views
from duckmkt.errors import ModelError
from duckmkt.scoring import register

REPO_ROOT = Path(__file__).resolve().parents[1]
ALLOWED_MODEL_FILES = {"model.onnx", "metadata.json", "metadata.json.sha256", "report.json"}
# Calls and file types that run code when a file is read back.
CODE_EXECUTING = re.compile(
    r"\bimport\s+(?:pickle|cPickle|dill|cloudpickle|joblib|shelve|marshal)\b"
    r"|\bfrom\s+(?:pickle|dill|cloudpickle|joblib|shelve|marshal)\s+import\b"
    r"|allow_pickle\s*=\s*True"
    r"|\btorch\.load\("
    r"|\bpd\.read_pickle\(|\.to_pickle\("
    r"|\.(?:save|save_model)\([^)]*\.(?:keras|h5|pkl|pickle|joblib)['\"]"
    r"|['\"][^'\"]*\.(?:pkl|pickle|joblib|h5|keras)['\"]"
)


@pytest.fixture
def model_copy(tmp_path, trained_model_dir) -> Path:
    target = tmp_path / "customer" / trained_model_dir.name
    shutil.copytree(trained_model_dir, target)
    return target


def test_verify_model_edited_metadata_rejected(model_copy):
    metadata = json.loads((model_copy / "metadata.json").read_text())
    metadata["strategy_thresholds"]["churn_risk_high"] = 0.0
    (model_copy / "metadata.json").write_text(json.dumps(metadata, indent=2))

    with pytest.raises(ModelError, match="metadata.json has sha256") as raised:
        registry.verify_model(model_copy)
    assert "metadata.json.sha256" in str(raised.value)


def test_verify_model_edited_metadata_one_byte(model_copy):
    data = bytearray((model_copy / "metadata.json").read_bytes())
    data[data.index(b"\n")] = ord(" ")
    (model_copy / "metadata.json").write_bytes(bytes(data))

    with pytest.raises(ModelError, match="changed or damaged"):
        registry.verify_model(model_copy)


def test_verify_model_missing_checksum_file_rejected(model_copy):
    (model_copy / "metadata.json.sha256").unlink()

    with pytest.raises(ModelError, match="not found"):
        registry.verify_model(model_copy)


def test_verify_model_truncated_onnx_rejected(model_copy):
    data = (model_copy / "model.onnx").read_bytes()
    (model_copy / "model.onnx").write_bytes(data[: len(data) // 2])

    with pytest.raises(ModelError, match="model.onnx has sha256"):
        registry.verify_model(model_copy)


def test_register_edited_metadata_rejected(model_copy, small_db):
    metadata = json.loads((model_copy / "metadata.json").read_text())
    metadata["feature_names"] = list(reversed(metadata["feature_names"]))
    (model_copy / "metadata.json").write_text(json.dumps(metadata))
    con = duckdb.connect(str(small_db), read_only=True)
    try:
        with pytest.raises(ModelError, match="changed or damaged"):
            register(con, model_copy)
    finally:
        con.close()


def test_promote_edited_metadata_rejected(model_copy, small_db_copy):
    con = duckdb.connect(str(small_db_copy))
    sql_views.install(con)
    registry.record_model(con, model_copy)
    (model_copy / "metadata.json").write_text((model_copy / "metadata.json").read_text().replace('"name"', '"name" ', 1))
    try:
        with pytest.raises(ModelError, match="changed or damaged"):
            registry.promote(con, "customer", model_copy.name)
        assert registry.promoted_version(con, "customer") is None
    finally:
        con.close()


def test_write_metadata_keeps_folder_valid(model_copy):
    metadata = registry.load_metadata(model_copy)
    metadata["version"] = "20250101T000000Z"
    registry.write_metadata(model_copy, metadata)

    assert registry.verify_model(model_copy)["version"] == "20250101T000000Z"


def test_model_folder_only_onnx_and_json(trained_model_dir):
    names = {path.name for path in trained_model_dir.iterdir()}
    assert names <= ALLOWED_MODEL_FILES
    assert "model.onnx" in names

    onnx.checker.check_model(onnx.load(str(trained_model_dir / "model.onnx")))
    for name in ("metadata.json", "report.json"):
        json.loads((trained_model_dir / name).read_text(encoding="utf-8"))
    for path in trained_model_dir.iterdir():
        # Pickle protocol 2 and later start with the PROTO opcode 0x80.
        assert not path.read_bytes().startswith(b"\x80"), path.name


def test_source_has_no_code_executing_format():
    folders = ["src", "sql", "scripts", "benchmarks"]
    offenders = []
    for folder in folders:
        for path in sorted((REPO_ROOT / folder).rglob("*")):
            if path.suffix not in (".py", ".sql", ".toml", ".sh") or not path.is_file():
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if CODE_EXECUTING.search(line):
                    offenders.append(f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_no_pickle_files_in_repository():
    suffixes = {".pkl", ".pickle", ".joblib", ".h5", ".keras", ".npy", ".npz"}
    # The project's files: tracked ones and new ones git does not ignore. The
    # virtual environment is ignored, and third-party packages in it ship
    # their own test fixtures in these formats.
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    found = [name for name in listed if Path(name).suffix in suffixes]

    assert listed
    assert found == []


def test_code_executing_pattern_catches_examples():
    for line in ("import pickle", "from joblib import dump", "np.load(path, allow_pickle=True)", "model.save('m.keras')"):
        assert CODE_EXECUTING.search(line), line
    assert not CODE_EXECUTING.search("onnx.save(model, path)")
