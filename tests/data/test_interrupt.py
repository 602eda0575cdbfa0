"""Interrupted conversion: SIGKILL at any moment loses nothing, duplicates nothing, exposes nothing partial.

The converter runs as the real command in a subprocess and is killed (SIGKILL: no cleanup runs)
while a shard is being written, while a file is half converted, and between two files; each
re-run resumes, and the finished store must hold exactly the rows of an uninterrupted run.
"""

from __future__ import annotations

import csv
import gzip
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from quickdraw.data.receipts import SOURCES_DIR
from quickdraw.data.schema import SPLITS, Manifest
from quickdraw.data.store import Store, StoreError

pytestmark = pytest.mark.slow

WORDS = ("ant", "bee", "cat", "dog")
ROWS_PER_FILE = 20_000  # about a second of converting per file: room to kill it mid-file
# Small shards and row groups: many renames per file, so every kind of moment comes up.
SETTINGS = ["settings.shard_rows=1024", "settings.row_group_size=256"]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("src")
    rng = np.random.default_rng(0)
    for w, word in enumerate(WORDS):
        with gzip.open(out / f"{word}.csv.gz", "wt", newline="", compresslevel=1) as f:
            writer = csv.writer(f)
            writer.writerow(["countrycode", "drawing", "key_id", "recognized", "timestamp", "word"])
            for i in range(ROWS_PER_FILE):
                n = int(rng.integers(2, 20))
                drawing = [[rng.integers(0, 256, n).tolist(), rng.integers(0, 256, n).tolist()]]
                writer.writerow(["US", json.dumps(drawing), 1_000_000 * (w + 1) + i, "True", "", word])  # fmt: skip
    return out


def start(source: Path, store: Path, run: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "quickdraw.convert", f"source={source}", f"store={store}",
         "workers=1", "progress=false", *SETTINGS, f"hydra.run.dir={run}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def receipts(store: Path) -> set[str]:
    return {p.stem for p in (store / SOURCES_DIR).glob("*.json") if not p.stem.startswith("_")}


def final_shards(store: Path) -> list[Path]:
    return [p for s in SPLITS for p in (store / s).glob("*.parquet")]


def check_readable(store: Path, checked: set[Path]) -> None:
    """Every shard under a final name reads completely (one that is being deleted may vanish)."""
    for path in final_shards(store):
        if path in checked:
            continue
        try:
            table = pq.read_table(path)
        except FileNotFoundError:
            continue
        assert table.num_rows > 0, f"{path.name}: empty shard under a final name"
        checked.add(path)


def kill_when(proc: subprocess.Popen, store: Path, ready: Callable[[], bool], what: str) -> None:
    """SIGKILL the converter the moment `ready()` holds, reading every final shard meanwhile."""
    checked: set[Path] = set()
    deadline = time.monotonic() + 240
    while not ready():
        check_readable(store, checked)
        if proc.poll() is not None:
            pytest.fail(f"the converter finished before {what}:\n{proc.stdout.read()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    check_readable(store, set())
    assert not (store / "manifest.json").exists(), f"killed {what}: no manifest may claim a complete store"  # fmt: skip
    with pytest.raises(StoreError, match="verify=true|convert"):
        Store(store)


def tmp_shards(store: Path) -> list[Path]:
    return [p for s in SPLITS for p in (store / s).glob(".*.tmp")]


def unfinished_final_shard(store: Path) -> bool:
    """A final-named shard of a file that has no receipt yet: the file is half converted."""
    done = receipts(store)
    return any(p.name.rsplit("-", 1)[0] not in done for p in final_shards(store)) and bool(done)


def keys_by_split(store: Path) -> dict[str, list[int]]:
    m = Manifest.load(store)
    return {
        s: sorted(
            k
            for p in m.shards[s]
            for k in pq.read_table(store / p, columns=["key_id"])["key_id"].to_pylist()
        )  # fmt: skip
        for s in SPLITS
    }


def test_sigkill_at_any_moment_then_resume_equals_an_uninterrupted_run(source, tmp_path):
    reference = tmp_path / "reference"
    ref = start(source, reference, tmp_path / "run-ref")
    assert ref.wait(timeout=300) == 0, ref.stdout.read()
    expected = keys_by_split(reference)

    store = tmp_path / "store"
    # 1. During the very first shard write: only a temporary file exists.
    kill_when(start(source, store, tmp_path / "run-1"), store, lambda: bool(tmp_shards(store)), "a shard write")  # fmt: skip
    # 2. Mid-file: finished parts of an unfinished file already sit under final names.
    kill_when(start(source, store, tmp_path / "run-2"), store, lambda: unfinished_final_shard(store), "mid-file")  # fmt: skip
    # 3. Between files: the moment a new receipt lands.
    before = len(receipts(store))
    kill_when(start(source, store, tmp_path / "run-3"), store, lambda: len(receipts(store)) > before, "between files")  # fmt: skip
    assert len(receipts(store)) < len(WORDS)

    final = start(source, store, tmp_path / "run-4")
    assert final.wait(timeout=300) == 0, final.stdout.read()
    got = keys_by_split(store)
    for split in SPLITS:
        assert len(got[split]) == len(set(got[split])), f"duplicate rows in {split}"
        assert got[split] == expected[split], f"{split} differs from the uninterrupted run"
    assert Manifest.load(store).counts == Manifest.load(reference).counts
    assert not tmp_shards(store), "temporary shards left behind"
    listed = {store / p for s in SPLITS for p in Manifest.load(store).shards[s]}
    assert set(final_shards(store)) == listed, "a stray shard outside the manifest"
    Store(store)  # and the DataModule's index accepts it
