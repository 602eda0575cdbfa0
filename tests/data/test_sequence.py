"""The `sequence` input: pen moves built batch-wise, its truncation rule, and the DataModule serving named inputs."""

from __future__ import annotations

import numpy as np
import pytest

from quickdraw.data.inputs import build_inputs, empty_drawing, spec_config, spec_from_config
from quickdraw.data.raster import RasterSpec
from quickdraw.data.sequence import SequenceSpec
from quickdraw.data.strokes import StrokeBatch


def reference(drawing: list, max_points: int) -> np.ndarray:
    """One drawing's (dx, dy, pen_up) rows, point by point, as the module docstring states them."""
    rows, previous = [], (0.0, 0.0)
    for xs, ys in drawing:
        for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
            rows.append([(x - previous[0]) / 255, (y - previous[1]) / 255, float(i == len(xs) - 1)])
            previous = (x, y)
    return np.asarray(rows, np.float32).reshape(-1, 3)[:max_points]


def random_drawings(n: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    drawings = []
    for _ in range(n):
        strokes = []
        for _ in range(rng.integers(0, 5)):  # some drawings have no stroke at all
            k = int(rng.integers(1, 30))
            strokes.append([rng.integers(0, 256, k).tolist(), rng.integers(0, 256, k).tolist()])
        drawings.append(strokes)
    return drawings


@pytest.mark.parametrize("max_points", [1, 7, 128])
def test_sequences_match_the_point_by_point_definition(max_points):
    drawings = random_drawings(40)
    batch = StrokeBatch.from_drawings(drawings)
    points, lengths = SequenceSpec(max_points)(batch)
    expected = [reference(d, max_points) for d in drawings]
    assert points.dtype == np.float32 and lengths.dtype == np.int64
    assert lengths.tolist() == [len(e) for e in expected]
    assert points.shape == (40, max(lengths), 3)  # padded to the longest drawing, not max_points
    for row, e in zip(points, expected, strict=True):
        np.testing.assert_allclose(row[: len(e)], e, atol=1e-6)
        assert not row[len(e) :].any()


def test_truncation_keeps_the_start_of_the_drawing_and_works_on_selections():
    drawings = random_drawings(30, seed=1)
    batch = StrokeBatch.from_drawings(drawings)
    spec = SequenceSpec(max_points=5)
    picked = np.array([7, 3, 3, 20])
    sub = spec(batch.select(picked))
    whole = spec(batch)
    np.testing.assert_array_equal(sub.lengths, whole.lengths[picked])
    steps = sub.points.shape[1]
    np.testing.assert_array_equal(sub.points, whole.points[picked, :steps])
    # uint8 points, as the store hands them over, give the same sequences as floats.
    as_bytes = StrokeBatch(
        batch.points.astype(np.uint8), batch.stroke_offsets, batch.drawing_offsets
    )
    np.testing.assert_array_equal(spec(as_bytes).points, whole.points)


def test_a_blank_canvas_and_an_empty_batch():
    points, lengths = SequenceSpec()(empty_drawing())
    assert points.shape == (1, 0, 3) and lengths.tolist() == [0]
    empty = StrokeBatch(np.zeros((0, 2), np.uint8), np.zeros(1, np.int64), np.zeros(1, np.int64))
    assert SequenceSpec()(empty).points.shape == (0, 0, 3)
    with pytest.raises(ValueError, match="max_points"):
        SequenceSpec(0)


def test_specs_round_trip_through_plain_data():
    for spec in (SequenceSpec(64), RasterSpec(size=32, encoding="temporal")):
        config = spec_config(spec)
        assert all(isinstance(v, str | int | float | bool | type(None)) for v in config.values())
        assert spec_from_config(config) == spec
    with pytest.raises(ValueError, match="unknown"):
        spec_from_config({"kind": "builtins.open"})


def test_datamodule_builds_each_served_input_once_per_batch_from_the_same_strokes(tiny_store):
    from quickdraw.data.augment import StrokeAugment
    from quickdraw.data.datamodule import QuickDrawDataModule

    calls: list[int] = []

    class Counting(SequenceSpec):
        def __call__(self, batch):
            calls.append(len(batch))
            return super().__call__(batch)

    dm = QuickDrawDataModule(
        store=str(tiny_store), per_class=8, batch_size=8, raster=RasterSpec(size=16),
        inputs={"sequence": Counting(32), "temporal": RasterSpec(size=16, encoding="temporal")},
        augment=StrokeAugment(), sampling="fixed",
    )  # fmt: skip
    dm.setup()
    assert list(next(iter(dm.train_dataloader(epoch=0)))) == ["image", "label", "key_id"]
    assert not calls  # served only when the model reads it
    dm.serve(["sequence", "image"])
    batches = list(dm.train_dataloader(epoch=0))
    assert calls == [8] * len(batches)
    batch = batches[0]
    points, lengths = batch["sequence"]
    assert points.shape[0] == 8 and (lengths > 0).all() and "temporal" not in batch
    assert batch["image"].shape == (8, 1, 16, 16)
    with pytest.raises(ValueError, match="data.inputs"):
        dm.serve(["pressure"])
    assert "sequence" in dm.describe()["inputs"]


def test_evaluation_batches_hold_the_inputs_inference_builds(tiny_store):
    """Validation (no augmentation) and inference give the model the same arrays for a drawing."""
    from quickdraw.data.datamodule import QuickDrawDataModule
    from quickdraw.data.sampling import fixed_rows

    spec = SequenceSpec(16)
    dm = QuickDrawDataModule(store=str(tiny_store), val_per_class=4, eval_batch_size=8,
                             raster=RasterSpec(size=16), inputs={"sequence": spec})  # fmt: skip
    dm.setup()
    dm.serve(["sequence"])
    batch = next(iter(dm.val_dataloader()))
    index = dm.store["val"]
    rows = index.gather(fixed_rows(index, 4, dm.seed)[:8])
    built = build_inputs({"sequence": spec}, rows.strokes)["sequence"]
    np.testing.assert_array_equal(batch["sequence"][0].numpy(), built.points)
    np.testing.assert_array_equal(batch["key_id"].numpy(), rows.key_ids)


def test_a_mixed_ensemble_serves_evaluates_and_predicts_from_one_drawing(tmp_path):
    """The demo, evaluate and predict feed each member its own input, built from the same strokes."""
    import torch

    from quickdraw.evaluation.score import evaluate
    from quickdraw.evaluation.submission import write_submission
    from quickdraw.models.loading import load_model
    from quickdraw.models.module import QuickDrawModule
    from quickdraw.serving.guesser import Guesser
    from tests.helpers.drawings import LINE, SQUARE, kaggle_row, write_csv

    resnet = {"_target_": "quickdraw.models.components.resnet.resnet18"}
    rnn = {"_target_": "quickdraw.models.components.lstm.StrokeRNN", "input": "sequence",
           "conv_channels": [4], "kernel_sizes": [3], "hidden": 4, "layers": 1}  # fmt: skip
    net = {"_target_": "quickdraw.models.components.ensemble.Ensemble", "member": None,
           "members": [resnet, {**resnet, "input": "temporal"}, rnn]}  # fmt: skip
    module = QuickDrawModule(
        net=net, optimizer={"_target_": "torch.optim.AdamW", "_partial_": True},
        classes=["line", "square"], raster={"size": 16},
        inputs={"temporal": {"kind": "raster", "size": 16, "encoding": "temporal"},
                "sequence": {"kind": "sequence", "max_points": 16}},
    )  # fmt: skip
    path = tmp_path / "mixed.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    model = load_model(path)

    guesser = Guesser(model)
    assert "16 px gray image + 16 px temporal image + pen moves" in guesser.description
    guess = guesser.guess_strokes([[[0, 50, 100], [0, 50, 100], [0, 16, 33]]])
    assert len(guess.top) == 2 and guess.image.shape == (1, 16, 16)
    image = np.full((120, 120), 255, np.uint8)
    image[30:90, 58:62] = 0  # a photographed vertical bar
    assert len(guesser.guess_image(image).top) == 2

    rows = [
        kaggle_row(i, "line" if i % 2 else "square", LINE if i % 2 else SQUARE) for i in range(6)
    ]
    csv = write_csv(tmp_path / "test.csv", rows)
    scores, result = evaluate(model, tmp_path / "eval", input=str(csv), tta="flip")
    assert result["drawings"] == 6 and scores.topk.shape[0] == 6
    n, _ = write_submission(model, str(csv), tmp_path / "submission.csv", batch_size=4)
    assert n == 6
