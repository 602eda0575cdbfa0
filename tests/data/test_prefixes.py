"""Unfinished drawings: prefix truncation, the early/* metrics, prefix evaluation, the prefix
augmentation and the validation callback's outputs."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest

from quickdraw.core.runs import RunDir
from quickdraw.data.augment import StrokeAugment
from quickdraw.data.prefixes import growing_prefixes, ink_prefix, stroke_prefix, time_prefix
from quickdraw.data.strokes import StrokeBatch
from quickdraw.metrics.prefix import PrefixScores
from tests.helpers.configs import OPTIMIZER, RESNET
from tests.helpers.drawings import kaggle_row, write_csv

OFF = dict(scale=(1.0, 1.0), aspect=0.0, rotation=0.0, shear=0.0, shift=0.0, stroke_dropout=0.0, jitter=0.0)  # fmt: skip


def hand_batch(times: bool = True) -> StrokeBatch:
    """Drawing 0: a 10-long line, a 10-long line, a dot; drawing 1: one stroke 3 + 4 long;
    drawing 2: a single dot. Times: 10 ms a point, drawing 1 starting at 0 ms too."""
    b = StrokeBatch.from_drawings(
        [[[[0, 10], [0, 0]], [[0, 0], [0, 10]], [[5], [5]]], [[[0, 3, 3], [0, 0, 4]]], [[[1], [1]]]]
    )
    t = np.array([0, 10, 20, 30, 40, 0, 10, 20, 0], np.float32) if times else None
    return StrokeBatch(b.points, b.stroke_offsets, b.drawing_offsets, t)


def ink_length(b: StrokeBatch, i: int) -> float:
    return sum(float(np.hypot(*np.diff(s, axis=0).T).sum()) for s in b.drawing(i))


def test_stroke_prefixes_are_the_first_k_strokes_and_the_last_is_the_drawing():
    b = hand_batch()
    p, drawing, fraction = growing_prefixes(b, "strokes")
    np.testing.assert_array_equal(drawing, [0, 0, 0, 1, 2])
    np.testing.assert_allclose(fraction, [1 / 3, 2 / 3, 1, 1, 1])
    assert [len(p.drawing(i)) for i in range(len(p))] == [1, 2, 3, 1, 1]
    for m, (d, k) in enumerate([(0, 1), (0, 2), (0, 3), (1, 1), (2, 1)]):
        for got, want in zip(p.drawing(m), b.drawing(d)[:k], strict=True):
            np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(p.times, b.times[[0, 1, 0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 8]])
    one = stroke_prefix(b, np.array([1, 1]), np.array([0, 5]))  # k clipped to 1..S
    assert one.num_strokes.tolist() == [1, 1] and one.num_points.tolist() == [3, 3]


@pytest.mark.parametrize("f", [0.1, 0.25, 0.5, 0.75, 0.9, 1.0])
def test_ink_prefix_holds_that_share_of_the_ink_cut_mid_segment(f):
    b = hand_batch()
    p = ink_prefix(b, np.array([0, 1]), np.array([f, f]))
    for m, d in enumerate([0, 1]):
        assert ink_length(p, m) == pytest.approx(f * ink_length(b, d), abs=1e-4)
    # Half of drawing 0's ink is exactly its first stroke: the second stroke is not started.
    if f == 0.5:
        assert len(p.drawing(0)) == 1
    if f == 1.0:
        np.testing.assert_array_equal(p.points, b.points[:8])  # dot included
    # Times are interpolated along: at 25 % of drawing 1 (x = 1.75 of 3) it is 1.75 / 3 of 10 ms.
    if f == 0.25:
        assert p.drawing(1)[-1][-1].tolist() == [1.75, 0]
        assert p.times[-1] == pytest.approx(10 * 1.75 / 3)


def test_a_drawing_without_ink_is_kept_whole_and_no_prefix_is_empty():
    b = hand_batch()
    p, drawing, _ = growing_prefixes(b, "ink", np.array([0.0, 0.1, 1.0]))
    assert (p.num_points >= 1).all()
    assert p.num_points[drawing == 2].tolist() == [1, 1, 1]


def test_time_prefix_keeps_the_points_drawn_in_that_share_of_the_duration():
    b = hand_batch()
    p = time_prefix(b, np.array([0, 0, 0, 1, 1]), np.array([0.1, 0.5, 1.0, 0.5, 0.49]))
    assert p.num_points.tolist() == [1, 3, 5, 2, 1]  # drawing 0 lasts 40 ms, drawing 1 20 ms
    assert p.num_strokes.tolist() == [1, 2, 3, 1, 1]
    with pytest.raises(ValueError, match="raw ndjson"):
        time_prefix(hand_batch(times=False), np.array([0]), np.array([0.5]))


def test_early_metrics_on_hand_worked_predictions():
    # Drawing 0 (3 prefixes): wrong, right, right -> stable from 2/3; drawing 1 (2 prefixes):
    # right, wrong -> never stable; drawing 2 (1 prefix): right only at the end.
    fraction = np.array([1 / 3, 2 / 3, 1, 0.5, 1, 1])
    top1 = np.array([1, 0, 0, 1, 0, 2])
    s = PrefixScores(
        "strokes", ["a", "b", "c"], np.array([0, 0, 0, 1, 1, 2]), fraction,
        np.array([0, 0, 0, 1, 1, 2]), np.stack([top1, (top1 + 1) % 3, (top1 + 2) % 3], 1),
        np.array([0.9, 0.4, 0.6, 0.9, 0.9, 0.9], np.float32),
    )  # fmt: skip
    m = s.metrics(0.5)
    assert m["early/auc_top1"] == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    assert m["early/correct_before_end"] == pytest.approx(1 / 3)
    assert m["early/median_fraction_first_stable"] == pytest.approx(2 / 3)
    # Accepted: drawing 0's right guess at 2/3 has p 0.4 < 0.5, so it is accepted from 1.0 only.
    assert m["early/accepted_auc_top1"] == pytest.approx((1 / 3 + 0.5 + 1) / 3)
    assert m["early/accepted_correct_before_end"] == 0
    assert np.isnan(m["early/accepted_median_fraction_first_stable"])
    curve = s.curve()
    assert list(curve.columns) == ["by", "fraction", "n", "top1", "top3", "map3"]
    assert curve.set_index("fraction").loc[1.0, "n"] == 3  # binned down: only finished drawings
    assert curve.set_index("fraction").loc[1.0, "top1"] == pytest.approx(2 / 3)
    table = s.per_class_table().set_index("class")
    assert table.loc["a", "early_median_fraction_first_stable"] == pytest.approx(0.6667)


def test_the_announcement_curve_on_hand_worked_predictions():
    # Drawing 0: wrong 0.9, right 0.4, right 0.6; drawing 1: right 0.9, wrong 0.9; drawing 2:
    # right 0.3 at its only prefix.
    fraction = np.array([1 / 3, 2 / 3, 1, 0.5, 1, 1])
    top1 = np.array([1, 0, 0, 1, 0, 2])
    s = PrefixScores(
        "strokes", ["a", "b", "c"], np.array([0, 0, 0, 1, 1, 2]), fraction,
        np.array([0, 0, 0, 1, 1, 2]), top1[:, None], np.array([0.9, 0.4, 0.6, 0.9, 0.9, 0.3], np.float32),
    )  # fmt: skip
    t = s.announcements([0.3, 0.5, 0.95]).set_index("threshold")
    # 0.3: every prefix is said: all announced; drawings 0 and 1 say a wrong word; first right
    # announcements at 2/3, 0.5 and 1: median 2/3.
    assert t.loc[0.3, "announced"] == 1 and t.loc[0.3, "announced_wrongly"] == pytest.approx(2 / 3)
    assert t.loc[0.3, "announced_right"] == 1
    assert t.loc[0.3, "median_fraction_right"] == pytest.approx(2 / 3)
    # 0.5: drawing 2 is never said; drawing 0 is right from 1.0 (0.4 < 0.5), drawing 1 from 0.5.
    assert t.loc[0.5, "announced"] == pytest.approx(2 / 3)
    assert t.loc[0.5, "median_fraction_right"] == pytest.approx(0.75)
    # 0.95: nothing is said.
    assert t.loc[0.95, "announced"] == 0 and np.isnan(t.loc[0.95, "median_fraction_right"])


# -- evaluation ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model(tiny_store):
    """An untrained ResNet18 at 16 px (cheap) for the tiny store's classes: varied guesses suffice."""
    import torch

    from quickdraw.data.raster import RasterSpec
    from quickdraw.data.store import Store
    from quickdraw.models.module import QuickDrawModule

    torch.manual_seed(0)
    m = QuickDrawModule(
        net=RESNET, optimizer=OPTIMIZER, classes=Store(tiny_store).classes,
        raster=asdict(RasterSpec(size=16)), log_images_every_n_epochs=0,
    )  # fmt: skip
    return m.eval()


# strokes: many batches of drawings, prefixes scored in chunks; ink: all in one (CPU time is per call)
@pytest.mark.parametrize(("by", "batch"), [("strokes", 16), ("ink", 512)])
def test_prefix_evaluation_at_fraction_one_equals_plain_evaluation(
    model, tiny_store, tmp_path, by, batch
):
    from quickdraw.evaluation.score import evaluate

    _, plain = evaluate(model, tmp_path / "plain", store=str(tiny_store), batch_size=batch)
    _, early = evaluate(model, tmp_path / by, store=str(tiny_store), batch_size=batch, prefix=by)
    run = RunDir(tmp_path / by)
    said = pd.read_csv(run.announcements_file)
    assert len(said) == len(early["announcements"]) and said["announced"].is_monotonic_decreasing
    curve = pd.read_csv(run.prefix_curve_file)
    assert list(curve.columns) == ["by", "fraction", "n", "top1", "top3", "map3"]
    end = curve.set_index("fraction").loc[1.0]
    assert end["n"] == plain["drawings"]
    assert end["top1"] == pytest.approx(plain["test/acc"])
    assert early["test/acc"] == pytest.approx(plain["test/acc"])
    assert run.prefix_curve_figure.is_file()
    saved = json.loads(run.metrics_file.read_text())
    assert 0 <= saved["early/auc_top1"] <= 1 and saved["early/accept_threshold"] == 0.9
    assert {"early_auc_top1", "accuracy"} <= set(pd.read_csv(run.per_class_file).columns)


def test_prefix_evaluation_counts_unreadable_rows_as_plain_evaluation_does(model, tmp_path):
    from quickdraw.evaluation.score import evaluate

    word = model.hparams.classes[0]
    rows = [kaggle_row(1, word), kaggle_row(2, word, "[[[1, 2], [3]]]"), kaggle_row(3, word)]
    src = write_csv(tmp_path / "test.csv", rows)
    _, plain = evaluate(model, tmp_path / "plain", input=str(src))
    _, early = evaluate(model, tmp_path / "early", input=str(src), prefix="strokes")
    assert early["drawings"] == plain["drawings"] == 3
    assert early["unreadable_counted_wrong"] == 1 and early["test/acc"] == plain["test/acc"]
    assert early["early/auc_top1"] <= 2 / 3  # the unreadable drawing adds a 0
    with pytest.raises(ValueError, match=r"test\.csv has none.*raw ndjson"):
        evaluate(model, tmp_path / "time", input=str(src), prefix="time")
    with pytest.raises(ValueError, match="balance"):
        evaluate(model, tmp_path / "bal", input=str(src), prefix="ink", balance=True)


def test_prefix_time_evaluation_reads_the_batches_times(model, tiny_store, tmp_path, monkeypatch):
    from quickdraw.evaluation import score as evaluation

    untimed = evaluation.store_batches

    def timed(store, split, batch_size):  # what a store keeping times will yield: 10 ms a point
        for strokes, labels in untimed(store, split, batch_size):
            starts = np.repeat(
                strokes.stroke_offsets[strokes.drawing_offsets[:-1]], strokes.num_points
            )
            t = (np.arange(len(strokes.points)) - starts).astype(np.float32) * 10
            yield (
                StrokeBatch(strokes.points, strokes.stroke_offsets, strokes.drawing_offsets, t),
                labels,
            )

    monkeypatch.setattr(evaluation, "store_batches", timed)
    _, plain = evaluation.evaluate(model, tmp_path / "plain", store=str(tiny_store))
    _, early = evaluation.evaluate(model, tmp_path / "t", store=str(tiny_store), prefix="time")
    curve = pd.read_csv(RunDir(tmp_path / "t").prefix_curve_file)
    assert curve["fraction"].tolist() == pytest.approx(np.arange(1, 11) / 10)
    assert (curve["by"] == "time").all() and early["prefix"] == "time"
    assert curve["top1"].iloc[-1] == pytest.approx(plain["test/acc"])


# -- training for it -----------------------------------------------------------------------------------
def random_batch(n: int = 200, seed: int = 0) -> StrokeBatch:
    rng = np.random.default_rng(seed)
    drawings = [
        [rng.integers(0, 256, (2, rng.integers(2, 7))).tolist() for _ in range(rng.integers(1, 6))]
        for _ in range(n)
    ]
    b = StrokeBatch.from_drawings(drawings)
    return StrokeBatch(
        b.points, b.stroke_offsets, b.drawing_offsets, np.arange(len(b.points), dtype=np.float32)
    )


@pytest.mark.parametrize("by", ["strokes", "ink"])
def test_prefix_augmentation(by):
    b = random_batch()
    same = StrokeAugment(**OFF, prefix=0.0, prefix_by=by)(b, np.random.default_rng(0))
    np.testing.assert_array_equal(same.points, b.points)
    np.testing.assert_array_equal(same.stroke_offsets, b.stroke_offsets)
    cut = StrokeAugment(**OFF, prefix=1.0, prefix_by=by)(b, np.random.default_rng(0))
    assert len(cut) == len(b) and (cut.num_points >= 1).all()
    assert len(cut.times) == len(cut.points)
    if by == "strokes":  # every drawing of 2+ strokes loses some, and keeps a prefix of its times
        multi = b.num_strokes > 1
        assert (cut.num_strokes[multi] < b.num_strokes[multi]).all()
        assert (cut.num_strokes[~multi] == 1).all()
        first = cut.stroke_offsets[cut.drawing_offsets[:-1]]
        np.testing.assert_array_equal(
            cut.times[first], b.times[b.stroke_offsets[b.drawing_offsets[:-1]]]
        )
    else:
        lengths = np.array(
            [ink_length(cut, i) / max(ink_length(b, i), 1e-9) for i in range(len(b))]
        )
        assert (lengths < 1 - 1e-6).all() and (lengths > 0.1 - 1e-4).all()
    with pytest.raises(ValueError, match="prefix_by"):
        StrokeAugment(prefix_by="time")


def test_training_logs_early_auc_and_keeps_the_prefix_curve(smoke_run):
    run = RunDir(smoke_run)
    curve = pd.read_csv(run.prefix_curve_file)
    assert list(curve.columns) == ["by", "fraction", "n", "top1", "top3", "map3"]
    from quickdraw.evaluation.results import Run, read_scalars

    scalars = read_scalars(Run(smoke_run, "smoke", {}, {}))
    assert len(scalars[scalars.tag == "val/early_auc_top1"]) == 2  # one per validation


def test_report_draws_prefix_curves_of_runs_and_evaluations_side_by_side(smoke_run, model, tiny_store, tmp_path):  # fmt: skip
    from quickdraw.evaluation import plots, results
    from quickdraw.evaluation.score import evaluate

    evaluate(model, tmp_path / "eval", store=str(tiny_store), prefix="strokes")
    curves = results.prefix_curves([smoke_run, tmp_path / "eval"])
    assert sorted(curves) == ["eval", smoke_run.name]
    fig = plots.plot_prefix_curves_of([smoke_run, tmp_path / "eval"])
    assert len(fig.axes[0].lines) == 2


def test_live_experiment_trains_on_prefixes():
    from hydra.utils import instantiate

    from tests.helpers.configs import compose_config

    cfg = compose_config("train", ["experiment=resnet18_live"])
    augment = instantiate(cfg.data.augment)
    assert augment.prefix == 0.25 and augment.prefix_by == "strokes"
    assert cfg.callbacks.early_guess.by == "strokes"


def test_earliest_and_latest_classes_never_overlap():
    from quickdraw.evaluation.score import earliest_and_latest

    table = pd.DataFrame({"class": ["a", "b", "c", "d"], "early_auc_top1": [0.9, np.nan, 0.1, 0.5]})
    assert earliest_and_latest(table) == (["a"], ["c"])  # 3 classes with drawings: one each
    assert earliest_and_latest(table, k=1) == (["a"], ["c"])
    many = pd.DataFrame({"class": list("abcdefghijkl"), "early_auc_top1": np.linspace(1, 0, 12)})
    early, late = earliest_and_latest(many)
    assert early == list("abcde") and late == list("lkjih")
