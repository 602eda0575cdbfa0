"""The report: run folders read back, checkpoints re-scored, figures and report.md written."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from quickdraw import cli
from quickdraw.evaluation import report, results
from quickdraw.evaluation.results import Run, SplitScores
from quickdraw.metrics.hardness import adaptive_quotas

FIGURES = ("learning_curves", "scores", "quotas", "confused_pairs")


# -- fast: the pieces on hand-made inputs ---------------------------------------------------------
def test_histogram_quantiles_recover_the_spread():
    values = np.arange(1, 101)
    limits = np.arange(10, 101, 10)  # bucket i holds (limits[i-1], limits[i]]
    counts = np.histogram(values, bins=np.arange(0, 101, 10))[0]
    q = results.histogram_quantiles(limits, counts, 1, 100, [0, 0.25, 0.5, 0.75, 1])
    assert q[0] == 1 and q[-1] == 100
    np.testing.assert_allclose(q[1:4], np.quantile(values, [0.25, 0.5, 0.75]), atol=1.0)


def test_histogram_quantiles_skip_empty_buckets():
    # All 15 quotas in two buckets far apart: the quartiles must land inside them, not between.
    limits = np.array([5.0, 10.0, 15.0, 20.0])
    q = results.histogram_quantiles(limits, np.array([5, 0, 0, 10]), 4, 20, [0.25, 0.75])
    assert 4 <= q[0] <= 5 and 15 <= q[1] <= 20


def predictions() -> SplitScores:
    labels = np.array([0, 0, 0, 1, 1, 2])
    top1 = np.array([0, 1, 1, 1, 0, 2])
    topk = np.stack([top1, (top1 + 1) % 3], axis=1)
    return SplitScores(["cat", "dog", "owl"], labels, topk, {}, np.arange(6), Path("."), "test")


def test_class_accuracy_and_confused_pairs():
    pred = predictions()
    np.testing.assert_allclose(pred.class_accuracy().to_numpy(), [1 / 3, 1 / 2, 1.0])
    pairs = pred.confused_pairs(5)
    assert pairs[["true", "predicted", "count"]].values.tolist() == [
        ["cat", "dog", 2],
        ["dog", "cat", 1],
    ]
    np.testing.assert_allclose(pairs.share, [2 / 3, 1 / 2])


def test_per_class_quotas_from_quotas_csv(tmp_path):
    rows = [
        (e, c, q) for e, qs in enumerate([(10, 20), (5, 25)]) for c, q in zip("ab", qs, strict=True)
    ]
    rows.append((1, "a", 7))  # a resumed run repeats epoch 1: the last entry wins
    pd.DataFrame(rows, columns=["epoch", "class", "quota"]).to_csv(
        tmp_path / "quotas.csv", index=False
    )
    run = Run(tmp_path, "x", {}, {})
    table = results.class_quotas(run)
    assert table.loc["a"].tolist() == [10, 7] and table.columns.tolist() == [1, 2]
    history = results.quota_history(run)
    assert history["min"].tolist() == [10, 7] and history["max"].tolist() == [20, 25]


def test_frame_to_markdown():
    df = pd.DataFrame(
        {"MAP@3": [0.5, 0.25], "epochs": [3, 4]}, index=pd.Index(["a", "b"], name="run")
    )
    assert report.frame_to_markdown(df, 2).splitlines() == [
        "| run | MAP@3 | epochs |",
        "|---|---|---|",
        "| a | 0.50 | 3 |",
        "| b | 0.25 | 4 |",
    ]


def test_cli_help_and_missing_runs(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.report(["--help"])
    assert e.value.code == 0 and "sweep folders" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        cli.report([str(tmp_path)])
    assert e.value.code == 2 and "no finished training run" in capsys.readouterr().err


# -- slow: two smoke runs (fixed and adaptive sampling) as one sweep ------------------------------
@pytest.fixture(scope="module")
def sweep(smoke_sweep) -> Path:
    return smoke_sweep


@pytest.fixture(scope="module")
def runs(sweep) -> list[Run]:
    return results.load_runs([sweep])


@pytest.mark.slow
def test_runs_are_found_and_named(runs):
    assert [r.name for r in runs] == ["smoke · fixed", "smoke · adaptive"]
    assert [r.path.name for r in runs] == ["0", "1"]


@pytest.mark.slow
def test_rescoring_matches_the_logged_test_scores(runs):
    for run in runs:
        shutil.rmtree(run.path / "report", ignore_errors=True)  # scored afresh, not read back
        pred = results.score_split(run)
        top1 = (pred.topk[:, 0] == pred.labels).mean()
        top3 = (pred.topk == pred.labels[:, None]).any(axis=1).mean()
        assert top1 == pytest.approx(run.metrics["test/acc"], abs=1e-6)
        assert top3 == pytest.approx(run.metrics["test/acc3"], abs=1e-6)
        assert (run.path / "report" / "per_class-test.csv").is_file()
        cached = results.score_split(run)
        np.testing.assert_array_equal(cached.topk, pred.topk)


@pytest.mark.slow
def test_learning_curves_count_finished_epochs(runs):
    for run in runs:
        df = results.read_scalars(run)
        val = df[df.tag == "val/map3"]
        assert val.epoch.tolist() == [1.0, 2.0]
        assert val.value.max() == pytest.approx(run.metrics["val/map3_best"])
        steps = df[df.tag == "train/loss_step"].epoch
        assert steps.is_monotonic_increasing and 0 <= steps.min() < 1 < steps.max() <= 2


@pytest.mark.slow
def test_quotas_follow_the_sampling_mode(runs):
    fixed, adaptive = runs
    n = fixed.config["data"]["per_class"]
    assert (results.final_quotas(fixed).quota == n).all()
    final = results.final_quotas(adaptive)
    np.testing.assert_array_equal(final.quota, adaptive_quotas(final.val_acc.to_numpy(), n))
    history = results.quota_history(adaptive)
    scalars = results.read_scalars(adaptive)
    assert history.epoch.tolist() == [1, 2]
    for col in ("min", "max"):
        logged = scalars[scalars.tag == f"sampler/quota_{col}"].value.to_numpy()
        np.testing.assert_allclose(history[col], logged)


@pytest.mark.slow
def test_report_writes_figures_and_a_table_row_per_run(runs, sweep, tmp_path):
    md = report.write_report([sweep], out=tmp_path)
    for name in FIGURES:
        image = matplotlib.image.imread(tmp_path / f"{name}.png")
        assert min(image.shape[:2]) > 200, name
        assert f"({name}.png)" in md.read_text()
    lines = md.read_text().splitlines()
    rows = [line for line in lines if line.startswith("| smoke · ")]
    assert len(rows) == 2
    header = next(line for line in lines if line.startswith("| run |")).split(" | ")
    for run, row in zip(runs, rows, strict=True):
        cells = row.split(" | ")
        assert cells[header.index("MAP@3")] == f"{run.metrics['test/map3']:.4f}"
    table = pd.read_csv(tmp_path / "comparison.csv", index_col="run")
    assert table.loc["smoke · adaptive", "top-1"] == pytest.approx(runs[1].metrics["test/acc"])
    per_class = pd.read_csv(tmp_path / "per_class_accuracy.csv", index_col="class")
    assert list(per_class.columns) == [r.name for r in runs] and len(per_class) == 15


@pytest.mark.slow
def test_cli_writes_into_the_sweep_folder(sweep):
    shutil.rmtree(sweep / "report", ignore_errors=True)  # another test's report, if any
    done = subprocess.run(
        [sys.executable, "-m", "quickdraw.report", str(sweep), "--no-eval"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    out = sweep / "report"
    assert Path(done.stdout.strip()) == out / "report.md"
    assert {"learning_curves.png", "scores.png", "quotas.png"} <= {p.name for p in out.iterdir()}
    metrics = json.loads((sweep / "0" / "metrics.json").read_text())
    assert f"{metrics['test/map3']:.4f}" in (out / "report.md").read_text()
