"""The Kaggle toolbox: mirror images (augmentation and TTA), test-set balancing, the EMA of the
weights as what is checkpointed and served, and the image-size schedule."""

from __future__ import annotations

from dataclasses import asdict

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from quickdraw.data.augment import StrokeAugment, mirror
from quickdraw.data.datamodule import QuickDrawDataModule
from quickdraw.data.raster import RasterSpec
from quickdraw.data.strokes import StrokeBatch
from quickdraw.inference.runner import predict_proba
from quickdraw.metrics.balancing import balance, load_prior
from quickdraw.models.loading import load_model
from quickdraw.models.module import QuickDrawModule
from quickdraw.training.callbacks.raster_schedule import RasterSchedule
from quickdraw.training.callbacks.weight_averaging import EMA

RESNET = {"_target_": "quickdraw.models.components.resnet.resnet18", "stem": "imagenet"}
OPTIMIZER = {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 3e-3}
NO_AUGMENT = dict(scale=(1.0, 1.0), aspect=0, rotation=0, shear=0, shift=0, stroke_dropout=0, jitter=0)  # fmt: skip
# A house: square walls, a roof peaked on the middle, a centred door; mirror-symmetric about x=100.
HOUSE = [[[0, 200, 200, 0, 0], [100, 100, 255, 255, 100]], [[0, 100, 200], [100, 0, 100]],
         [[80, 80, 120, 120], [255, 180, 180, 255]]]  # fmt: skip
# A "7": not symmetric.
SEVEN = [[[0, 200, 60], [0, 0, 255]]]


def model(classes=("a", "b", "c"), size=32) -> QuickDrawModule:
    torch.manual_seed(0)
    return QuickDrawModule(
        net=RESNET, optimizer=OPTIMIZER, classes=list(classes),
        raster=asdict(RasterSpec(size=size)), log_images_every_n_epochs=0,
    ).eval()  # fmt: skip


# -- the mirror image ----------------------------------------------------------------------------
def test_mirror_flips_each_drawing_within_its_own_box_and_twice_is_the_identity():
    batch = StrokeBatch.from_drawings([SEVEN, [[[10, 40, 30], [5, 9, 200]]]])
    flipped = mirror(batch)
    assert flipped.drawing(0)[0][:, 0].tolist() == [200, 0, 140]  # x -> 0 + 200 - x
    assert flipped.drawing(1)[0][:, 0].tolist() == [40, 10, 20]  # x -> 10 + 40 - x
    np.testing.assert_array_equal(flipped.points[:, 1], batch.points[:, 1])
    np.testing.assert_array_equal(mirror(flipped).points, batch.points)
    only_second = mirror(batch, np.array([False, True]))
    np.testing.assert_array_equal(only_second.drawing(0)[0], batch.drawing(0)[0])
    np.testing.assert_array_equal(only_second.drawing(1)[0], flipped.drawing(1)[0])


def test_flip_augmentation_mirrors_strokes_and_is_off_by_default():
    batch = StrokeBatch.from_drawings([SEVEN, HOUSE])
    rng = lambda: np.random.default_rng(0)  # noqa: E731
    always = StrokeAugment(**NO_AUGMENT, hflip=1.0)(batch, rng())
    np.testing.assert_array_equal(always.points, mirror(batch).points)
    assert StrokeAugment().hflip == 0
    np.testing.assert_array_equal(StrokeAugment(**NO_AUGMENT)(batch, rng()).points, batch.points)
    half = StrokeAugment(**NO_AUGMENT, hflip=0.5)(StrokeBatch.from_drawings([SEVEN] * 64), rng())
    flipped = sum(d[0][0, 0] == 200 for d in map(half.drawing, range(64)))
    assert 16 < flipped < 48


# -- test-time augmentation ----------------------------------------------------------------------
def test_flip_tta_leaves_a_symmetric_drawing_alone_and_averages_the_mirror_of_others():
    m = model()
    house = StrokeBatch.from_drawings([HOUSE])
    plain, tta = predict_proba(m, house), predict_proba(m, house, tta="flip")
    np.testing.assert_allclose(predict_proba(m, mirror(house)), plain, atol=1e-6)
    np.testing.assert_allclose(tta, plain, atol=1e-6)
    assert tta.argmax() == plain.argmax()

    seven = StrokeBatch.from_drawings([SEVEN])
    both = (predict_proba(m, seven) + predict_proba(m, mirror(seven))) / 2
    np.testing.assert_allclose(predict_proba(m, seven, tta="flip"), both, atol=1e-6)
    assert not np.allclose(predict_proba(m, seven), both, atol=1e-4)
    with pytest.raises(ValueError, match="tta must be one of none, flip"):
        predict_proba(m, seven, tta="rotate")


def test_the_demo_guesses_through_the_same_tta():
    from quickdraw.serving.guesser import Guesser

    m = model()
    raw = [[xs, ys, list(range(len(xs)))] for xs, ys in SEVEN]
    plain, tta = Guesser(m), Guesser(m, tta="flip")
    p_plain = dict(plain.guess_strokes(raw).top)
    p_tta = dict(tta.guess_strokes(raw).top)
    batch = plain.parse_strokes(raw)
    expected = predict_proba(m, batch, tta="flip")[0]
    assert p_tta == pytest.approx({c: float(expected[i]) for i, c in enumerate(m.hparams.classes)})
    assert p_tta != pytest.approx(p_plain)


# -- balancing -----------------------------------------------------------------------------------
def skewed(n_per_class=100, classes=6, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of a model that favours class 0 heavily, and the true labels (balanced)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n_per_class)
    logits = rng.normal(0, 1, (len(labels), classes))
    logits[np.arange(len(labels)), labels] += 1.5
    logits[:, 0] += 2.0
    p = np.exp(logits)
    return (p / p.sum(1, keepdims=True)).astype(np.float32), labels


def test_balancing_a_skewed_matrix_gives_equal_top1_counts_and_helps_on_balanced_data():
    probs, labels = skewed()
    before = np.bincount(probs.argmax(1), minlength=6)
    assert before[0] > 300  # the skew: half the rows go to class 0
    scores = balance(probs)
    assert np.bincount(scores.argmax(1), minlength=6).tolist() == [100] * 6
    assert (scores.argmax(1) == labels).mean() > (probs.argmax(1) == labels).mean()


def test_balancing_follows_a_prior_file_in_any_spelling(tmp_path):
    probs, _ = skewed()
    prior_csv = tmp_path / "prior.csv"
    prior_csv.write_text("word,count\nA,300\nb,60\nc,60\nd,60\ne,60\n f ,60\n")
    prior = load_prior(prior_csv, list("abcdef"))
    assert prior.tolist() == pytest.approx([0.5] + [0.1] * 5)
    assert np.bincount(balance(probs, prior).argmax(1), minlength=6).tolist() == [300] + [60] * 5
    (tmp_path / "bad.csv").write_text("word,count\ncat,3\n")
    with pytest.raises(ValueError, match="'cat' names no class"):
        load_prior(tmp_path / "bad.csv", list("abcdef"))


def test_predict_with_balance_and_tta_writes_every_row_in_input_order(tmp_path):
    from quickdraw.evaluation.submission import write_submission
    from tests.helpers.drawings import kaggle_row, write_csv

    rows = [kaggle_row(100 + i, "", SEVEN if i % 2 else HOUSE)[:3] for i in range(12)]
    src = write_csv(tmp_path / "test.csv", rows, header=["countrycode", "drawing", "key_id"])
    out = tmp_path / "sub.csv"
    n, _ = write_submission(model(), str(src), out, batch_size=5, tta="flip", balance=True)
    lines = out.read_text().splitlines()
    assert n == 12 and lines[0] == "key_id,word"
    assert [int(r.split(",")[0]) for r in lines[1:]] == list(range(100, 112))
    assert all(len(r.split(",")[1].split()) == 3 for r in lines[1:])


# -- training options ----------------------------------------------------------------------------
class ImageSizes(Callback):
    """Records the image size of the first training batch of every epoch."""

    def __init__(self):
        self.sizes: list[int] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 0:
            self.sizes.append(batch["image"].shape[-1])


def fit(tiny_store, out, callbacks, epochs=2) -> tuple[L.Trainer, QuickDrawModule]:
    dm = QuickDrawDataModule(
        store=str(tiny_store), sampling="fixed", per_class=16, val_per_class=8, test_per_class=8,
        batch_size=16, raster=RasterSpec(size=16),
    )  # fmt: skip
    dm.setup("fit")
    L.seed_everything(0)
    m = QuickDrawModule(
        net=RESNET, optimizer=OPTIMIZER, classes=dm.classes, raster=asdict(dm.raster),
        log_images_every_n_epochs=0,
    )  # fmt: skip
    last = ModelCheckpoint(dirpath=out, filename="last")
    trainer = L.Trainer(
        max_epochs=epochs, accelerator="cpu", logger=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=str(out), callbacks=[*callbacks, last],
    )  # fmt: skip
    trainer.fit(m, datamodule=dm)
    return trainer, m


def test_ema_weights_are_what_is_checkpointed_tested_and_served(tiny_store, tmp_path):
    ema = EMA(decay=0.5, update_starting_at_step=0)
    trainer, m = fit(tiny_store, tmp_path, [ema])
    average = {k: v.clone() for k, v in ema._average_model.module.state_dict().items()}
    ckpt = torch.load(tmp_path / "last.ckpt", weights_only=True)
    trained = ckpt["current_model_state"]
    key = "net.fc.weight"
    assert not torch.allclose(trained[key], average[key])  # the average is not the last step
    for name in (key, "net.conv1.weight", "net.bn1.running_mean"):
        torch.testing.assert_close(ckpt["state_dict"][name], average[name])
        torch.testing.assert_close(m.state_dict()[name], average[name])  # after fit: the average
    trainer.test(m, datamodule=trainer.datamodule, ckpt_path=str(tmp_path / "last.ckpt"))
    torch.testing.assert_close(m.state_dict()[key], average[key])  # tested: the average
    served = load_model(tmp_path / "last.ckpt")
    torch.testing.assert_close(served.state_dict()[key], average[key])


def test_raster_schedule_changes_the_trained_and_served_size_between_epochs(tiny_store, tmp_path):
    sizes = ImageSizes()
    trainer, m = fit(tiny_store, tmp_path, [RasterSchedule([16, 24, 32], [0, 1, 2]), sizes], 3)
    assert sizes.sizes == [16, 24, 32]
    assert m.hparams.raster["size"] == 32
    assert load_model(tmp_path / "last.ckpt").hparams.raster["size"] == 32
    with pytest.raises(ValueError, match="epochs ascending from 0"):
        RasterSchedule([64, 128], [1, 3])
