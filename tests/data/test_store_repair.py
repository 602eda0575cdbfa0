"""A damaged store stops the DataModule at setup with the file and the fix; the fix, run as printed, repairs it.

`test_datamodule.py` checks the refusals one by one; here each damage goes through the whole
loop a user follows: the error names the file, its command (`python -m quickdraw.convert ...
verify=true`) runs in a subprocess, only the damaged input files are converted again, and the
repaired store serves the same rows as before.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from quickdraw.data.conversion import convert
from quickdraw.data.convert_file import ConvertSettings
from quickdraw.data.datamodule import QuickDrawDataModule
from quickdraw.data.raster import RasterSpec
from quickdraw.data.schema import SPLITS, Manifest
from quickdraw.data.store import StoreError
from tests.helpers.drawings import squares_and_lines

pytestmark = pytest.mark.slow
WORDS = ("ant", "bee", "cat")
SETTINGS = dict(val_fraction=0.2, test_fraction=0.2, row_group_size=32)


@pytest.fixture
def source(tmp_path) -> Path:
    return squares_and_lines(tmp_path / "src", dict.fromkeys(WORDS, 120))


@pytest.fixture
def store(source, tmp_path) -> Path:
    convert(source, tmp_path / "store", ConvertSettings(**SETTINGS), progress=False)
    return tmp_path / "store"


def setup_error(store: Path) -> str:
    dm = QuickDrawDataModule(
        store=str(store), per_class=8, batch_size=8, raster=RasterSpec(size=32)
    )
    dm.prepare_data()
    with pytest.raises(StoreError) as err:
        dm.setup("fit")
    return str(err.value)


def run_fix(message: str, source: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run the command the error message prints: it names the source the manifest records (PATH
    where the manifest cannot be read, filled in as a user would)."""
    command = message.split("python -m ", 1)[1]
    command = command.replace("source=PATH", f"source={source}")
    args = shlex.split(command)
    settings = [f"settings.{k}={v}" for k, v in SETTINGS.items()]
    return subprocess.run(
        [sys.executable, "-m", *args, *settings, "progress=false", f"hydra.run.dir={tmp_path}/fix"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def rows(store: Path) -> dict[str, list[int]]:
    dm = QuickDrawDataModule(
        store=str(store), per_class=8, batch_size=8, raster=RasterSpec(size=32)
    )
    dm.setup("fit")
    m = Manifest.load(store)
    return {
        s: sorted(
            k
            for p in m.shards[s]
            for k in pq.read_table(store / p, columns=["key_id"])["key_id"].to_pylist()
        )  # fmt: skip
        for s in SPLITS
    }


def damage(store: Path, how: str) -> Path:
    m = Manifest.load(store)
    victim = store / m.shards["train"][0]
    if how == "truncated":
        victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    elif how == "overwritten":
        victim.write_bytes(b"\0" * victim.stat().st_size)
    elif how == "missing":
        victim.unlink()
    elif how == "manifest_truncated":
        victim = store / "manifest.json"
        victim.write_text(victim.read_text()[:100])
    elif how == "manifest_of_another_store":
        victim = store / "manifest.json"
        data = json.loads(victim.read_text())
        data["counts"]["train"][0] += 5
        victim.write_text(json.dumps(data))
    return victim


@pytest.mark.parametrize(
    "how",
    ["truncated", "overwritten", "missing", "manifest_truncated", "manifest_of_another_store"],
)
def test_damaged_store_error_names_the_file_and_its_fix_repairs_it(store, source, tmp_path, how):
    before = rows(store)
    shards = [p for s in SPLITS for p in (store / s).glob("*.parquet")]
    victim = damage(store, how)
    message = setup_error(store)
    # A wrong count is a property of the store, not of one file: the message names the store.
    assert str(victim if how != "manifest_of_another_store" else store) in message, message
    assert "verify=true" in message, message
    # the source the manifest records, unless the manifest itself cannot be read
    named = "source=PATH " if how == "manifest_truncated" else f"source={source.resolve()} "
    assert named in message, message
    mtimes = {p: p.stat().st_mtime_ns for p in shards if p != victim and p.exists()}

    result = run_fix(message, source, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert rows(store) == before
    victim_source = victim.name.rsplit("-", 1)[0]
    untouched = [p for p in mtimes if not p.name.startswith(victim_source)]
    assert untouched and all(p.stat().st_mtime_ns == mtimes[p] for p in untouched), (
        "verify rebuilt input files that were not damaged"
    )


def test_manifest_of_another_schema_version_says_to_rebuild_into_a_new_folder(
    store, source, tmp_path
):
    before = rows(store)
    path = store / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "schema_version": 99}))
    message = setup_error(store)
    assert str(path) in message and "schema_version 99" in message
    fixed = message.split("python -m ", 1)[1].replace("NEW_DIR", str(tmp_path / "new"))
    result = run_fix(f"python -m {fixed}", source, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert rows(tmp_path / "new") == before


def test_verify_repairs_a_damaged_receipt(store, source, tmp_path):
    before = rows(store)
    receipt = next((store / "_sources").glob("ant-*.json"))
    receipt.write_text(receipt.read_text()[:50])
    result = run_fix(f"python -m quickdraw.convert source={source} store={store} verify=true", source, tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert rows(store) == before and json.loads(receipt.read_text())["rows_kept"] == 120
