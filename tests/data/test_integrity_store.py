"""A store knows when it is damaged or stale: no byte of a shard changes a drawing unnoticed, and a
store converted from `data.source` follows its source (new and changed files converted, removed
ones refused with the command that rebuilds it).

Damage is swept over whole shards (every few bytes with each bit position, zeroed runs, the
footer): each damaged shard is either refused on read, naming the file and the repair command, or
reads back identical rows. The same sweep with verification off finds silent changes, which is
what shows that the comparison can tell.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from quickdraw.data import synthetic
from quickdraw.data.conversion import convert
from quickdraw.data.convert_file import ConvertSettings
from quickdraw.data.datamodule import QuickDrawDataModule
from quickdraw.data.raster import RasterSpec
from quickdraw.data.receipts import _verified_rows
from quickdraw.data.schema import WRITE_OPTIONS, Manifest
from quickdraw.data.sources import StoreSource
from quickdraw.data.store import Rows, SplitIndex, Store, StoreError
from quickdraw.evaluation.score import store_batches
from tests.helpers.drawings import raw_ndjson, squares_and_lines
from tests.helpers.paths import ROOT, leftovers


def settings() -> ConvertSettings:
    """Small row groups (several to a shard); fresh each time (convert fills in the classes)."""
    return ConvertSettings(val_fraction=0.2, test_fraction=0.2, row_group_size=16)


# -- damage ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["simplified", "timed"])
def shard_store(request, tmp_path_factory) -> Path:
    """A store whose train shard has several row groups: generated doodles, or raw drawings with
    per-point times (one more binary column)."""
    root = tmp_path_factory.mktemp(request.param)
    if request.param == "simplified":
        classes = sorted(synthetic.CLASSES)[:2]
        synthetic.generate(root / "src", per_class=40, classes=classes, seed=0, progress=False)
    else:
        raw_ndjson(root / "src" / "cat.ndjson", n=60)
    convert(root / "src", root / "store", settings(), workers=1, progress=False)
    return root / "store"


def read_shard(store: Path, rel: str, verify: bool = True) -> Rows:
    """Every row of one shard, through the reader training and evaluation use."""
    manifest = Manifest.load(store)
    index = SplitIndex(store, [rel], len(manifest.classes), manifest.shard_checks, verify)
    return index.gather(np.arange(len(index)))


def same_rows(a: Rows, b: Rows) -> bool:
    sa, sb = a.strokes, b.strokes
    fields = [
        (sa.points, sb.points),
        (sa.stroke_offsets, sb.stroke_offsets),
        (sa.drawing_offsets, sb.drawing_offsets),
        (a.labels, b.labels),
        (a.key_ids, b.key_ids),
    ]
    times_same = (sa.times is None) == (sb.times is None) and (
        sa.times is None or np.array_equal(sa.times, sb.times)
    )
    return times_same and all(x.shape == y.shape and np.array_equal(x, y) for x, y in fields)


def damages(size: int, flips: int = 400, runs: int = 60) -> list[tuple[str, int, int]]:
    """(kind, offset, length) spread over `size` bytes: about `flips` single bits flipped, an
    odd stride apart so that the bit flipped (offset % 8) takes all eight values, and about
    `runs` zeroed runs of 300 bytes and of 8 bytes."""
    step = max(size // flips, 1) | 1
    out = [("flip", pos, 1) for pos in range(0, size, step)]
    for n in (300, 8):
        out += [("zero", pos, n) for pos in range(0, max(size - n, 1), max(size // runs, 1))]
    return out


def damaged(data: bytes, kind: str, pos: int, n: int) -> bytes:
    out = bytearray(data)
    if kind == "flip":
        out[pos] ^= 1 << (pos % 8)
    else:
        out[pos : pos + n] = bytes(n)
    return bytes(out)


def sweep(store: Path, verify: bool) -> dict[str, list]:
    """Each damage of the first train shard, read back: detected, harmless or silently changed."""
    rel = Manifest.load(store).shards["train"][0]
    path = store / rel
    original, truth = path.read_bytes(), read_shard(store, rel)
    check = Manifest.load(store).shard_checks[rel]
    found: dict[str, list] = {"detected": [], "harmless": [], "silent": []}
    # Unchecked, a damaged footer can abort the process inside pyarrow (a C++ exception seen
    # with a flipped type field): the control sweeps the column chunks only.
    end = len(original) if verify else len(original) - 8 - int.from_bytes(original[-8:-4], "little")
    try:
        for kind, pos, n in damages(end):
            bad = damaged(original, kind, pos, n)
            if bad == original:
                continue  # zeroing bytes that were zero already
            path.write_bytes(bad)
            with pytest.raises(ValueError, match="is damaged"):  # convert ... verify=true
                _verified_rows(path, check)
            try:
                rows = read_shard(store, rel, verify)
            except StoreError as e:
                assert str(path) in str(e) and "verify=true" in str(e), str(e)
                found["detected"].append((kind, pos))
                continue
            found["harmless" if same_rows(rows, truth) else "silent"].append((kind, pos))
    finally:
        path.write_bytes(original)
    return found


def test_no_damaged_byte_of_a_shard_changes_a_drawing_unnoticed(shard_store):
    found = sweep(shard_store, verify=True)
    assert not found["silent"], f"damage read back as other drawings: {found['silent'][:10]}"
    # Harmless: bytes no read decodes (columns training does not read, page statistics, the
    # leading magic); verify=true still finds every one (sweep).
    assert len(found["detected"]) > len(found["harmless"])
    # Without the checksums the same sweep finds silent changes: the comparison can tell.
    assert sweep(shard_store, verify=False)["silent"]


def test_every_byte_of_the_footer_and_of_the_dictionary_pages_is_covered(shard_store):
    """The footer (row counts, offsets, the label statistics the index reads), which page
    checksums do not cover and its SHA-256 does: every 7th byte. Dictionary pages (label and
    country code), which the reader skips but pyarrow's page check covers: every bit."""
    rel = Manifest.load(shard_store).shards["train"][0]
    path = shard_store / rel
    original, truth = path.read_bytes(), read_shard(shard_store, rel)
    footer_start = len(original) - 8 - int.from_bytes(original[-8:-4], "little")
    try:
        for pos in range(footer_start, len(original), 7):
            path.write_bytes(damaged(original, "flip", pos, 1))
            try:
                rows = read_shard(shard_store, rel)
            except StoreError as e:
                assert str(path) in str(e)
                continue
            assert same_rows(rows, truth), f"footer byte {pos} changed the rows silently"
    finally:
        path.write_bytes(original)
    meta = pq.read_metadata(path)
    columns = ["label", "countrycode"]
    group = meta.row_group(0)
    chunks = [group.column(meta.schema.to_arrow_schema().get_field_index(c)) for c in columns]
    assert all(c.has_dictionary_page for c in chunks)
    expected = pq.read_table(path, columns=columns)
    for chunk in chunks:
        for pos in range(chunk.dictionary_page_offset, chunk.data_page_offset):
            for bit in range(8):
                bad = bytearray(original)
                bad[pos] ^= 1 << bit
                reader = pq.ParquetFile(
                    pa.BufferReader(bytes(bad)), page_checksum_verification=True
                )
                try:
                    table = reader.read(columns=columns)
                except (OSError, pa.ArrowException):  # a CRC, or a damaged page header
                    continue
                assert table.equals(expected), f"dictionary byte {pos} bit {bit}: silent change"


def zero_300_bytes(store: Path) -> Path:
    """The issue's case: 300 zeroed bytes inside the first train shard's drawings."""
    manifest = Manifest.load(store)
    path = store / manifest.shards["train"][0]
    meta = pq.read_metadata(path)
    points = meta.row_group(0).column(meta.schema.to_arrow_schema().get_field_index("points"))
    data = bytearray(path.read_bytes())
    start = points.data_page_offset + 40
    data[start : start + 300] = bytes(300)
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def store_copy(tmp_path) -> tuple[Path, Path]:
    """(source, store) of three classes, converted fresh for a test that damages the store."""
    source = squares_and_lines(tmp_path / "src", {"ant": 60, "bee": 60, "cat": 60})
    convert(source, tmp_path / "store", settings(), workers=1, progress=False)
    return source, tmp_path / "store"


def test_training_and_evaluation_refuse_a_shard_with_zeroed_bytes(store_copy):
    _, store = store_copy
    victim = zero_300_bytes(store)
    dm = QuickDrawDataModule(
        store=str(store), per_class=40, batch_size=8, raster=RasterSpec(size=32)
    )
    dm.prepare_data()
    with pytest.raises(StoreError) as err:
        dm.setup("fit")
        for _ in dm.train_dataloader(epoch=0):
            pass
    assert str(victim) in str(err.value) and "verify=true" in str(err.value)
    with pytest.raises(StoreError, match="verify=true") as err:
        for _ in store_batches(Store(store), "train", 16):
            pass
    assert str(victim) in str(err.value)


@pytest.mark.parametrize("where", ["points", "footer", "zeroed"])
def test_verify_finds_damage_anywhere_and_converts_only_that_file_again(store_copy, where, caplog):
    source, store = store_copy
    before = key_ids(store)
    if where == "zeroed":
        victim = zero_300_bytes(store)
    else:
        victim = store / Manifest.load(store).shards["train"][0]
        data = bytearray(victim.read_bytes())
        meta = pq.read_metadata(victim)
        points = meta.row_group(0).column(2)
        pos = points.data_page_offset + 30 if where == "points" else len(data) - 60
        data[pos] ^= 0x10
        victim.write_bytes(bytes(data))
    others = {p: p.stat().st_mtime_ns for p in store.rglob("*.parquet") if p != victim}
    with caplog.at_level(logging.INFO, logger="quickdraw.data.receipts"):
        convert(source, store, settings(), workers=1, verify=True, progress=False)
    assert "verify: 1 of 3 input files need converting again" in caplog.text
    assert str(victim) in caplog.text
    assert key_ids(store) == before
    victim_source = victim.name.rsplit("-", 1)[0]
    untouched = [p for p in others if not p.name.startswith(victim_source)]
    assert untouched and all(p.stat().st_mtime_ns == others[p] for p in untouched)


# -- stores written before checksums ---------------------------------------------------------------
def strip_checksums(store: Path) -> None:
    """Make `store` what an older quickdraw wrote: shards without page checksums (row groups
    kept), no shard_checks in the manifest, no checks in the receipts."""
    manifest = Manifest.load(store)
    options = {k: v for k, v in WRITE_OPTIONS.items() if k != "write_page_checksum"}
    for rel in (p for files in manifest.shards.values() for p in files):
        pf = pq.ParquetFile(store / rel)
        groups = [pf.read_row_group(g) for g in range(pf.num_row_groups)]
        with pq.ParquetWriter(store / rel, pf.schema_arrow, **options) as writer:
            for table in groups:
                writer.write_table(table, row_group_size=len(table))
    manifest.shard_checks = {}
    manifest.save(store)
    for receipt in (store / "_sources").glob("*-*.json"):
        data = json.loads(receipt.read_text())
        data.pop("checks", None)
        receipt.write_text(json.dumps(data))


def test_a_store_without_checksums_is_read_with_a_warning_and_verify_adds_them(store_copy, caplog):
    source, store = store_copy
    truth = read_shard(store, Manifest.load(store).shards["train"][0])
    strip_checksums(store)
    with caplog.at_level(logging.WARNING, logger="quickdraw.data.store"):
        old = Store(store)
    assert "converted without checksums" in caplog.text and f"store={store} verify=true" in caplog.text  # fmt: skip
    assert same_rows(old["train"].gather(np.arange(len(truth))), truth)

    convert(source, store, settings(), workers=1, verify=True, progress=False)
    manifest = Manifest.load(store)
    shards = [p for files in manifest.shards.values() for p in files]
    assert sorted(manifest.shard_checks) == sorted(shards)
    assert all(has_page_checksums(store / p) for p in shards)
    assert same_rows(read_shard(store, manifest.shards["train"][0]), truth)


def has_page_checksums(path: Path) -> bool:
    """Whether pyarrow's page check fails on a byte flipped inside the first page's data."""
    meta = pq.read_metadata(path)
    data = bytearray(path.read_bytes())
    key_ids = meta.row_group(0).column(0)
    data[key_ids.data_page_offset + key_ids.total_compressed_size - 4] ^= 1
    reader = pq.ParquetFile(pa.BufferReader(bytes(data)), page_checksum_verification=True)
    try:
        reader.read_row_group(0)
    except OSError as e:
        return "CRC" in str(e)
    return False


def test_new_shards_carry_page_checksums_and_stripped_ones_do_not(store_copy):
    _, store = store_copy
    path = store / Manifest.load(store).shards["train"][0]
    assert has_page_checksums(path)
    strip_checksums(store)
    assert not has_page_checksums(path)


# -- stale stores ----------------------------------------------------------------------------------
def snapshot(folder: Path) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def key_ids(store: Path) -> dict[str, set[int]]:
    """key_ids per class over every split."""
    st = Store(store)
    out: dict[str, set[int]] = {c: set() for c in st.classes}
    for split in st.splits.values():
        rows = split.gather(np.arange(len(split)))
        for label, key in zip(rows.labels.tolist(), rows.key_ids.tolist(), strict=True):
            out[st.classes[label]].add(key)
    return out


@pytest.fixture
def cached(tmp_path) -> tuple[StoreSource, Path]:
    source = squares_and_lines(tmp_path / "src", {"ant": 30, "cat": 30})
    where = StoreSource(
        source=str(source), cache_dir=tmp_path / "cache", convert_settings={"row_group_size": 8}
    )
    where.ensure()
    return where, source


def test_a_file_added_to_the_source_is_converted_at_the_next_start(cached, tmp_path, caplog):
    where, source = cached
    squares_and_lines(source, {"bee": 30}, key_base=7000)  # a new class: every label moves
    with caplog.at_level(logging.INFO, logger="quickdraw.data.sources"):
        store = where.ensure()
    assert "1 new (bee.csv.gz)" in caplog.text
    assert f"data: store {store}, up to date with {source}" in caplog.text
    assert sorted(key_ids(store)) == ["ant", "bee", "cat"]
    assert key_ids(store)["bee"] == {7000 + i for i in range(30)}


def test_a_file_of_a_known_class_added_converts_only_it(cached, tmp_path):
    where, source = cached
    before = snapshot(where.path / "train")
    more = squares_and_lines(tmp_path / "more", {"cat": 10}, key_base=9000)
    shutil.copy(more / "cat.csv.gz", source / "cat-more.csv.gz")
    store = where.ensure()
    assert key_ids(store)["cat"] >= {9000 + i for i in range(10)}
    assert all(snapshot(store / "train").get(p) == s for p, s in before.items())


@pytest.mark.parametrize("layout", ["folder", "zip"])
def test_a_changed_file_is_converted_again_and_its_old_rows_are_gone(tmp_path, layout):
    folder = squares_and_lines(tmp_path / "src", {"ant": 30, "cat": 30})
    source = folder
    if layout == "zip":
        source = tmp_path / "src.zip"
        with zipfile.ZipFile(source, "w") as z:
            for p in sorted(folder.iterdir()):
                z.write(p, p.name)
    where = StoreSource(source=str(source), cache_dir=tmp_path / "cache")
    store = where.ensure()
    cat_shards = {p: s for p, s in snapshot(store).items() if p.name.startswith("cat-")}
    changed = squares_and_lines(tmp_path / "new", {"ant": 25}, key_base=5000)
    if layout == "zip":
        with zipfile.ZipFile(source, "w") as z:
            z.write(changed / "ant.csv.gz", "ant.csv.gz")
            z.write(folder / "cat.csv.gz", "cat.csv.gz")
    else:
        shutil.copy(changed / "ant.csv.gz", folder / "ant.csv.gz")
    store = where.ensure()
    assert key_ids(store)["ant"] == {5000 + i for i in range(25)}  # none of the old 30 left
    assert all(snapshot(store).get(p) == s for p, s in cat_shards.items())


@pytest.mark.parametrize("how", ["edited in place", "copied over"])
def test_a_file_replaced_keeping_its_size_and_time_is_converted_again(tmp_path, how):
    """`cp -p`, `rsync -t` and `touch -r` put back the old modification time: another file of
    the same size must still be seen as changed (its status change time moved)."""
    source = squares_and_lines(tmp_path / "src", {"ant": 10, "cat": 10}, suffix=".csv")
    where = StoreSource(source=str(source), cache_dir=tmp_path / "cache")
    where.ensure()
    path = source / "cat.csv"
    before = path.stat()
    replaced = path.read_bytes().replace(b",2000,", b",2999,")  # one key_id, as many bytes
    assert len(replaced) == before.st_size and replaced != path.read_bytes()
    if how == "copied over":
        (tmp_path / "new.csv").write_bytes(replaced)
        shutil.copy(tmp_path / "new.csv", path)
    else:
        path.write_bytes(replaced)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    store = where.ensure()
    assert 2999 in key_ids(store)["cat"] and 2000 not in key_ids(store)["cat"]


@pytest.mark.parametrize("layout", ["csv", "zip"])
def test_files_of_one_name_in_two_folders_are_two_files(tmp_path, layout):
    """`2019/cat.csv` and `2020/cat.csv` (or two `train.zip`) of one source: both converted,
    neither taken for the other (their ids once were the file name alone: half the drawings were
    dropped as 'repeated key_ids'), and the one added later is new, not a change of the first."""
    source = tmp_path / "src"
    for year, base in (("2019", 1000), ("2020", 5000)):
        folder = squares_and_lines(source / year, {"cat": 10}, key_base=base, suffix=".csv")
        if layout == "zip":
            with zipfile.ZipFile(folder / "train.zip", "w") as z:
                z.write(folder / "cat.csv", "train/cat.csv")
            (folder / "cat.csv").unlink()
        if year == "2019":
            where = StoreSource(source=str(source), cache_dir=tmp_path / "cache")
            assert key_ids(where.ensure())["cat"] == {1000 + i for i in range(10)}
    store = where.ensure()
    assert key_ids(store)["cat"] == {1000 + i for i in range(10)} | {5000 + i for i in range(10)}
    assert not Manifest.load(store).duplicates.get("rows")
    m = convert(source, tmp_path / "direct", settings(), workers=1, progress=False)
    assert sum(m.rows.values()) == 20


@pytest.mark.parametrize("workers", [1, 2])
def test_a_full_disk_with_every_splits_part_open_is_one_line(
    full_disk,
    sample_dir,
    tmp_path,
    workers,
):
    """The real sample (344 files) onto 1 MiB: the disk fills while a file's train, val and test
    parts are all open, and the parts the error did not reach are dropped too: no "Exception
    ignored" traceback from pyarrow's writers closing themselves at exit, no temporary file."""
    (full_disk / "filler").unlink()
    store = full_disk / "store"
    done = subprocess.run(
        [sys.executable, "-m", "quickdraw.convert", f"source={sample_dir / 'train_simplified.zip'}",
         f"store={store}", f"workers={workers}", "progress=false", "settings.val_fraction=0.2",
         "settings.test_fraction=0.2", f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    said = done.stdout + done.stderr
    assert done.returncode == 2, said[-3000:]
    assert "Traceback" not in said and "Exception ignored" not in said, said[-3000:]
    assert len([line for line in said.splitlines() if "Free some space" in line]) == 1
    assert leftovers(full_disk) == []


@pytest.mark.slow  # runs the printed command in a fresh interpreter
def test_a_removed_file_is_refused_with_the_command_that_rebuilds(cached, tmp_path):
    where, source = cached
    (source / "ant.csv.gz").unlink()
    with pytest.raises(StoreError) as err:
        where.ensure()
    message = str(err.value)
    assert "1 removed (ant.csv.gz)" in message and "overwrite=true" in message
    command = shlex.split(message.split(": python -m ", 1)[1])
    result = subprocess.run(
        [sys.executable, "-m", *command, "progress=false", f"hydra.run.dir={tmp_path}/fix"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(key_ids(where.ensure())) == ["cat"]


def test_an_up_to_date_store_is_only_read(cached, caplog):
    """Checked at each start without writing anything: a read-only store keeps working."""
    where, source = cached
    before = snapshot(where.path)
    with caplog.at_level(logging.INFO, logger="quickdraw.data.sources"):
        where.ensure()
    assert snapshot(where.path) == before
    assert f"data: store {where.path}, up to date with {source}" in caplog.text


def test_a_stale_store_that_cannot_be_written_says_what_to_do(cached, monkeypatch):
    where, source = cached
    squares_and_lines(source, {"cat-more": 5}, key_base=9000)

    def read_only(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(where.path / "train"))

    monkeypatch.setattr("quickdraw.data.sources.convert", read_only)
    with pytest.raises(StoreError, match="cannot be written") as err:
        where.ensure()
    assert "store=NEW_DIR" in str(err.value) and "data.store=NEW_DIR" in str(err.value)


def test_a_store_given_directly_says_whether_its_source_changed_and_trains_without_it(
    cached, tmp_path, caplog
):
    where, source = cached
    store = tmp_path / "copied-store"
    shutil.copytree(where.path, store)
    given = StoreSource(store=str(store))
    with caplog.at_level(logging.INFO, logger="quickdraw.data.staleness"):
        given.ensure()
        assert f"up to date with its source {source.resolve()}" in caplog.text
        squares_and_lines(source, {"cat-more": 5}, key_base=9000)
        given.ensure()
        assert "out of date with its source" in caplog.text and "1 new (cat-more.csv.gz)" in caplog.text  # fmt: skip
        shutil.rmtree(source)  # a store copied to a machine without its source
        dm = QuickDrawDataModule(store=str(store), per_class=8, batch_size=8, raster=RasterSpec(size=32))  # fmt: skip
        dm.prepare_data()
        dm.setup("fit")
        assert next(iter(dm.train_dataloader(epoch=0)))["image"].shape[0] == 8
    assert "is not on this machine: used as converted" in caplog.text


RANK1 = """
import sys
from quickdraw.data.sources import StoreSource
from quickdraw.data.schema import Manifest
path = StoreSource(source=sys.argv[1], cache_dir=sys.argv[2], convert_settings={"row_group_size": 8}).ensure()
print(Manifest.load(path).classes)
"""


@pytest.mark.slow
def test_other_ranks_wait_until_the_first_has_brought_the_store_up_to_date(cached, tmp_path):
    where, source = cached
    squares_and_lines(source, {"bee": 30}, key_base=7000)
    env = dict(os.environ, LOCAL_RANK="1", PYTHONPATH=str(ROOT))
    rank1 = subprocess.Popen(
        [sys.executable, "-c", RANK1, str(source), str(where.cache_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        time.sleep(4)
        assert rank1.poll() is None, "rank 1 went on with a stale store"
        where.ensure()  # rank 0
        out, err = rank1.communicate(timeout=60)
    finally:
        rank1.kill()
    assert rank1.returncode == 0, err
    assert out.strip().splitlines()[-1] == "['ant', 'bee', 'cat']"


def test_convert_run_again_converts_changed_files_and_new_ones_of_its_classes(tmp_path):
    source = squares_and_lines(tmp_path / "src", {"ant": 30, "cat": 30})
    store = tmp_path / "store"
    convert(source, store, settings(), workers=1, progress=False)
    squares_and_lines(tmp_path / "new", {"ant": 20}, key_base=5000)
    shutil.copy(tmp_path / "new" / "ant.csv.gz", source / "ant.csv.gz")
    squares_and_lines(tmp_path / "more", {"cat": 5}, key_base=9000)
    shutil.copy(tmp_path / "more" / "cat.csv.gz", source / "cat-more.csv.gz")
    convert(source, store, settings(), workers=1, progress=False)
    found = key_ids(store)
    assert found["ant"] == {5000 + i for i in range(20)}
    assert found["cat"] == {2000 + i for i in range(30)} | {9000 + i for i in range(5)}
