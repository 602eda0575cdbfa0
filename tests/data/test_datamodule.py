"""QuickDrawDataModule: per-class quotas, fresh epochs, workers, ranks, fixed eval sets, damaged stores."""

from __future__ import annotations

import json
from collections import Counter

import lightning as L
import numpy as np
import pytest
import torch

from quickdraw.data import sources as sources_mod
from quickdraw.data.conversion import convert
from quickdraw.data.convert_file import ConvertSettings
from quickdraw.data.datamodule import QuickDrawDataModule
from quickdraw.data.raster import RasterSpec
from quickdraw.data.schema import SCHEMA_VERSION, Manifest
from quickdraw.data.store import StoreError
from tests.helpers.drawings import kaggle_row, squares_and_lines, write_csv

WORDS = ("ant", "bee", "cat", "dog")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    rows = {word: 400 + 100 * w for w, word in enumerate(WORDS)}
    squares_and_lines(root / "src", rows, key_base=10_000)
    convert(
        root / "src",
        root / "store",
        ConvertSettings(val_fraction=0.1, test_fraction=0.1, row_group_size=64),
        progress=False,
    )
    return root / "store"


def make_dm(store, **kw) -> QuickDrawDataModule:
    kw = {"per_class": 50, "batch_size": 16, "raster": RasterSpec(size=32), **kw}
    dm = QuickDrawDataModule(store=str(store), **kw)
    dm.prepare_data()
    dm.setup()
    return dm


def served(loader) -> tuple[list[int], list[int]]:
    keys, labels = [], []
    for batch in loader:
        assert batch["image"].dtype == torch.uint8 and batch["image"].shape[1:] == (1, 32, 32)
        keys += batch["key_id"].tolist()
        labels += batch["label"].tolist()
    return keys, labels


def test_epoch_holds_quota_per_class_without_repeats(store):
    dm = make_dm(store, drop_last=False)
    keys, labels = served(dm.train_dataloader(epoch=0))
    assert Counter(labels) == {c: 50 for c in range(4)}
    assert len(set(keys)) == len(keys) == 200


def test_epochs_are_fresh_and_reproducible(store):
    dm = make_dm(store, drop_last=False)
    e0, _ = served(dm.train_dataloader(epoch=0))
    e1, _ = served(dm.train_dataloader(epoch=1))
    again, _ = served(dm.train_dataloader(epoch=0))
    assert e0 == again
    assert len(set(e0) & set(e1)) < 0.5 * len(e0)


@pytest.mark.parametrize("num_workers", [2, 3])
def test_workers_serve_every_drawing_once(store, num_workers):
    reference, _ = served(make_dm(store, drop_last=False).train_dataloader(epoch=3))
    keys, _ = served(
        make_dm(store, drop_last=False, num_workers=num_workers).train_dataloader(epoch=3)
    )
    assert sorted(keys) == sorted(reference) and len(set(keys)) == len(keys)


def test_ranks_take_disjoint_equal_shares(store):
    dm = make_dm(store, drop_last=False)
    shares = []
    for rank in range(2):
        dm._rank = lambda rank=rank: (rank, 2)
        shares.append(served(dm.train_dataloader(epoch=5))[0])
    assert len(shares[0]) == len(shares[1]) == 100
    assert not set(shares[0]) & set(shares[1])


def test_set_quotas_takes_effect_next_epoch_with_workers(store):
    dm = make_dm(store, drop_last=False, num_workers=2)
    dm.set_quotas([10, 0, 30, 10_000])  # dog has fewer training rows: it is used whole
    _, labels = served(dm.train_dataloader(epoch=1))
    counts = Counter(labels)
    assert counts[0] == 10 and counts[1] == 0 and counts[2] == 30
    assert counts[3] == dm.store["train"].class_rows[3]
    with pytest.raises(ValueError, match="one entry per class"):
        dm.set_quotas([1, 2])


def test_eval_sets_are_fixed_and_capped(store):
    dm = make_dm(store, val_per_class=20, test_per_class=None)
    v1, vl = served(dm.val_dataloader())
    v2, _ = served(dm.val_dataloader())
    assert v1 == v2 and Counter(vl) == {c: 20 for c in range(4)}
    t, _ = served(dm.test_dataloader())
    assert len(t) == sum(Manifest.load(store).counts["test"])


def test_augmentation_changes_images_but_not_labels(store):
    from quickdraw.data.augment import StrokeAugment

    plain = next(iter(make_dm(store).train_dataloader(epoch=0)))
    aug = next(iter(make_dm(store, augment=StrokeAugment()).train_dataloader(epoch=0)))
    assert torch.equal(plain["label"], aug["label"]) and not torch.equal(
        plain["image"], aug["image"]
    )


class _Recorder(L.LightningModule):
    """Records which drawings each training epoch saw; the callback below changes quotas."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.seen: dict[int, list[int]] = {}

    def training_step(self, batch, _):
        self.seen.setdefault(self.current_epoch, []).extend(batch["label"].tolist())
        return self.layer(batch["image"].float().mean((1, 2, 3))[:, None]).sum()

    def validation_step(self, batch, _):
        pass

    def on_validation_epoch_end(self):
        if not self.trainer.sanity_checking:
            self.trainer.datamodule.set_quotas([5 * (self.current_epoch + 1)] * 4)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_trainer_sees_new_quotas_each_epoch(store, tmp_path, num_workers):
    dm = QuickDrawDataModule(
        store=str(store),
        per_class=8,
        batch_size=4,
        raster=RasterSpec(size=16),
        num_workers=num_workers,
        persistent_workers=True,
        val_per_class=4,
    )
    model = _Recorder()
    trainer = L.Trainer(
        max_epochs=3,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, datamodule=dm)
    assert [len(model.seen[e]) for e in range(3)] == [32, 20, 40]


def test_source_is_converted_once_into_the_cache(tmp_path, monkeypatch):
    write_csv(tmp_path / "src" / "cat.csv", [kaggle_row(k, "cat") for k in range(1, 50)])
    dm = QuickDrawDataModule(source=str(tmp_path / "src"), cache_dir=str(tmp_path / "cache"))
    dm.prepare_data()
    dm.setup()
    assert dm.classes == ["cat"] and dm.store.path.parent == tmp_path / "cache" / "stores"
    monkeypatch.setattr(sources_mod, "convert", lambda *a, **k: pytest.fail("converted twice"))
    QuickDrawDataModule(
        source=str(tmp_path / "src"), cache_dir=str(tmp_path / "cache")
    ).prepare_data()


def test_cached_stores_of_another_schema_version_are_rebuilt_beside_not_refused(tmp_path):
    write_csv(tmp_path / "src" / "cat.csv", [kaggle_row(k, "cat") for k in range(1, 50)])
    dm = QuickDrawDataModule(source=str(tmp_path / "src"), cache_dir=str(tmp_path / "cache"))
    dm.prepare_data()
    old = dm.resolved_store().with_name(
        dm.resolved_store().name.replace(f"-v{SCHEMA_VERSION}-", f"-v{SCHEMA_VERSION - 1}-")
    )
    assert old != dm.resolved_store()
    dm.resolved_store().rename(old)  # the cache an older release left behind
    manifest = json.loads((old / "manifest.json").read_text())
    (old / "manifest.json").write_text(
        json.dumps({**manifest, "schema_version": SCHEMA_VERSION - 1})
    )
    again = QuickDrawDataModule(source=str(tmp_path / "src"), cache_dir=str(tmp_path / "cache"))
    again.prepare_data()
    again.setup()
    assert again.classes == ["cat"] and again.store.path != old and old.exists()
    synthetic_store = QuickDrawDataModule(cache_dir=str(tmp_path / "cache")).resolved_store()
    assert f"-v{SCHEMA_VERSION}-" in synthetic_store.name


def test_store_without_manifest_names_the_fix(tmp_path):
    dm = QuickDrawDataModule(store=str(tmp_path / "nothing"))
    with pytest.raises(StoreError, match="python -m quickdraw.convert"):
        dm.prepare_data()


def _copy_store(store, tmp_path):
    import shutil

    shutil.copytree(store, tmp_path / "copy")
    return tmp_path / "copy"


@pytest.mark.parametrize(
    "damage", ["missing", "truncated", "overwritten", "schema", "schema_v1", "counts"]
)
def test_damaged_store_fails_at_setup_naming_file_and_fix(store, tmp_path, damage):
    copy = _copy_store(store, tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    shard = copy / manifest["shards"]["train"][0]
    if damage == "missing":
        shard.unlink()
    elif damage == "truncated":
        shard.write_bytes(shard.read_bytes()[:100])
    elif damage == "overwritten":
        shard.write_bytes(b"x" * shard.stat().st_size)
    elif damage == "schema":
        manifest["schema_version"] = 99
        (copy / "manifest.json").write_text(json.dumps(manifest))
    elif damage == "schema_v1":  # x/y list<list<uint8>> columns: must be converted again
        manifest["schema_version"] = 1
        (copy / "manifest.json").write_text(json.dumps(manifest))
    else:
        manifest["counts"]["train"][0] += 1
        (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StoreError) as err:
        make_dm(copy)
    message = str(err.value)
    assert "quickdraw.convert" in message
    if damage in ("missing", "truncated", "overwritten"):
        assert str(shard) in message and "verify=true" in message
    if damage == "schema_v1":
        assert "schema_version 1" in message and "reads 2" in message and "store=NEW_DIR" in message


def test_real_sample_through_the_datamodule(sample_dir, tmp_path):
    dm = QuickDrawDataModule(
        source=str(sample_dir / "train_simplified.zip"),
        cache_dir=str(tmp_path),
        per_class=3,
        batch_size=64,
    )
    dm.prepare_data()
    dm.setup()
    assert dm.num_classes == 344
    keys = []
    for batch in dm.train_dataloader(epoch=0):
        assert batch["image"].shape[1:] == (1, 64, 64) and batch["image"].float().mean() > 0
        keys += batch["key_id"].tolist()
    assert len(set(keys)) == len(keys) == 344 * 3 - (344 * 3) % 64
    assert np.array_equal(dm.quotas, np.full(344, 3))


def test_group_use_reads_few_row_groups_yet_keeps_every_drawing_equally_likely(store):
    from quickdraw.data.sampling import epoch_rows

    index = make_dm(store).store["train"]
    quotas = np.array([64, 0, 0, 0])
    group_of = lambda rows: set(np.searchsorted(index.rg_start, rows, side="right") - 1)  # noqa: E731
    few = epoch_rows(index, quotas, seed=0, epoch=0, shuffle_window=512, group_use=1.0)
    spread = epoch_rows(index, quotas, seed=0, epoch=0, shuffle_window=512, group_use=0.01)
    n_groups = index.class_ptr[1] - index.class_ptr[0]
    assert len(few) == len(spread) == 64 and len(group_of(few)) <= 2 < n_groups - 1 <= len(
        group_of(spread)
    )
    hits = Counter()
    for epoch in range(300):
        hits.update(
            epoch_rows(
                index, quotas, seed=0, epoch=epoch, shuffle_window=512, group_use=0.5
            ).tolist()
        )
    counts = np.array([hits[r] for r in index.class_to_global(0, np.arange(index.class_rows[0]))])
    expected = 300 * 64 / index.class_rows[0]
    assert abs(counts.mean() - expected) < 1e-9 and counts.std() < 0.35 * expected
