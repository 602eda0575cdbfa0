"""Training entry point: every experiment composes and runs; a short run produces checkpoints, logs and scores."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from quickdraw.training.fit import train
from tests.helpers.commands import run_module
from tests.helpers.drawings import TINY_CLASSES

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted(p.stem for p in (ROOT / "quickdraw/conf" / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_runs_fast_dev_run(experiment, tiny_config, tmp_path, request):
    extra = []
    if experiment == "distill":  # a student needs its teacher: the smoke run's model
        smoke = request.getfixturevalue("smoke_run")
        extra = [
            f"model.objective.teacher={json.loads((smoke / 'metrics.json').read_text())['best_ckpt']}"
        ]
    cfg = tiny_config(tmp_path, f"experiment={experiment}", "debug=fast", *extra)
    metrics = train(cfg)
    assert {"test/acc", "test/acc3", "test/map3"} <= set(metrics)


# experiment: (network, how an ensemble combines its members, loss)
MODELS = {
    "resnet18": ("resnet.resnet18", None, "losses.CrossEntropy"),
    "resnet18_penalized": ("resnet.resnet18", None, "losses.ClassWeightedCrossEntropy"),
    "ensemble_head": ("ensemble.Ensemble", "head", "losses.CrossEntropy"),
    "ensemble_mean": ("ensemble.Ensemble", "mean", "losses.CrossEntropy"),
}


@pytest.mark.parametrize("sampling", ["fixed", "adaptive"])
def test_four_models_and_both_sampling_modes_are_experiments(sampling, tiny_config, tmp_path):
    assert set(MODELS) <= set(EXPERIMENTS)
    for experiment, (net, combine, loss) in MODELS.items():
        cfg = tiny_config(tmp_path, f"experiment={experiment}", f"data.sampling={sampling}")
        assert cfg.model.net._target_.endswith(f".{net}"), experiment
        assert cfg.model.net.get("combine") == combine, experiment
        assert cfg.model.loss._target_.endswith(f".{loss}"), experiment
        # The sampler reads the data's mode (its one home), and the run is tagged with it.
        assert cfg.data.sampling == sampling and "mode" not in cfg.callbacks.adaptive_sampler
        assert list(cfg.tags) == [experiment, sampling]


def test_penalised_loss_samples_a_fixed_n_unless_told_otherwise(tiny_config, tmp_path):
    # The class-weighted loss replaces adaptive sampling; both at once over-correct (README).
    cfg = tiny_config(tmp_path, "experiment=resnet18_penalized")
    assert cfg.data.sampling == "fixed"
    assert cfg.model.loss._target_.endswith("ClassWeightedCrossEntropy")
    cfg = tiny_config(tmp_path, "experiment=resnet18_penalized", "data.sampling=adaptive")
    assert cfg.data.sampling == "adaptive"


def test_run_folder_holds_checkpoints_logs_and_metrics(smoke_run):
    metrics = json.loads((smoke_run / "metrics.json").read_text())
    assert {"test/acc", "test/acc3", "test/map3", "val/map3_best", "best_ckpt"} <= set(metrics)
    assert 0.0 <= metrics["test/map3"] <= 1.0
    assert Path(metrics["best_ckpt"]).is_file()
    assert (smoke_run / "checkpoints" / "best.ckpt").resolve() == Path(
        metrics["best_ckpt"]
    ).resolve()
    assert (smoke_run / "checkpoints" / "last.ckpt").is_file()
    hparams = torch.load(metrics["best_ckpt"], map_location="cpu", weights_only=False)[
        "hyper_parameters"
    ]
    assert hparams["data_origin"] == "generated", "the store's origin travels with the model"
    events = list((smoke_run / "tensorboard").rglob("events.out.tfevents.*"))
    assert events and {e.parent for e in events} == {smoke_run / "tensorboard"}, (
        "one TensorBoard run"
    )
    with open(smoke_run / "quotas.csv") as f:
        rows = list(csv.DictReader(f))
    assert {int(r["epoch"]) for r in rows} >= {0, 1}
    assert sorted({r["class"] for r in rows}) == TINY_CLASSES
    assert all(int(r["quota"]) >= 4 for r in rows), "floor: 0.25 x per_class 16"


def test_resume_from_last_continues_in_the_same_folder(tiny_config, tmp_path):
    # A run of its own: resuming changes the folder, which the other tests read.
    train(tiny_config(tmp_path, "experiment=smoke", "trainer.max_epochs=2"))
    quotas = (tmp_path / "quotas.csv").read_text().splitlines()
    metrics = train(
        tiny_config(tmp_path, "experiment=smoke", "trainer.max_epochs=3", "ckpt_path=last")
    )
    assert metrics["epochs"] == 3
    # Continued, not restarted: epochs 0 and 1 were not trained again, only epoch 2 was added.
    after = (tmp_path / "quotas.csv").read_text().splitlines()
    assert after[: len(quotas)] == quotas
    assert {int(row["epoch"]) for row in csv.DictReader(after[:1] + after[len(quotas) :])} == {2}
    events = list((tmp_path / "tensorboard").rglob("events.out.tfevents.*"))
    assert {e.parent for e in events} == {tmp_path / "tensorboard"}, (
        "resume must not start a new TensorBoard run"
    )


def test_evaluate_and_predict_on_the_checkpoint(smoke_run, tiny_data_dir, tmp_path):
    ckpt = smoke_run / "checkpoints" / "best.ckpt"
    source = next((tiny_data_dir / "csv").glob("*.csv.gz"))
    r = run_module("quickdraw.evaluate", f"ckpt_path={ckpt}", f"input={source}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "MAP@3" in r.stdout
    out = tmp_path / "sub.csv"
    r = run_module(
        "quickdraw.predict", f"ckpt_path={ckpt}", f"input={source}", f"output={out}", cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "key_id,word" and len(lines) == 81
    key, words = lines[1].split(",")
    assert (
        key.isdigit() and len(words.split(" ")) == 3 and all(" " not in w for w in words.split(" "))
    )
    r = run_module("quickdraw.evaluate", f"ckpt_path={source}", f"input={source}", cwd=tmp_path)
    assert r.returncode == 2 and "not a checkpoint of this project" in r.stdout + r.stderr


def test_averaging_ensemble_of_frozen_runs_is_scored_without_training(
    smoke_run, tiny_config, tmp_path
):
    """members: [run, run] + freeze_members: nothing to train, yet a tested, loadable checkpoint."""
    import torch

    from quickdraw.models.loading import load_model

    member = (smoke_run / "checkpoints" / "best.ckpt").resolve()
    cfg = tiny_config(
        tmp_path,
        "experiment=ensemble_mean",
        f"model.net.checkpoints=[{member},{member}]",
        "model.net.freeze_members=true",
    )
    metrics = train(cfg)
    assert metrics["epochs"] == 0 and Path(metrics["best_ckpt"]).name == "frozen.ckpt"
    assert {"val/map3", "test/acc", "test/map3"} <= set(metrics)
    # Two copies of one member average to that member: the saved ensemble predicts like it.
    ensemble, alone = load_model(metrics["best_ckpt"]), load_model(member)
    x = torch.rand(4, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ensemble(x).softmax(-1), alone(x).softmax(-1))


def test_an_ensemble_of_loaded_members_credits_every_members_data(smoke_run, tmp_path):
    """Members trained on Google's data, combined on a generated store: the ensemble learnt both."""
    import torch

    from quickdraw.models.module import QuickDrawModule

    member = smoke_run / "checkpoints" / "best.ckpt"
    ckpt = torch.load(member, map_location="cpu", weights_only=False)
    hp = ckpt["hyper_parameters"]
    origins = {}
    for name, origin in (("qd", "quickdraw"), ("old", None)):
        ckpt["hyper_parameters"] = {**hp, "data_origin": origin}
        torch.save(ckpt, origins.setdefault(name, tmp_path / f"{name}.ckpt"))

    def ensemble(*paths: Path, store_origin: str = "generated") -> str | None:
        net = {"_target_": "quickdraw.models.components.ensemble.Ensemble", "_recursive_": False,
               "combine": "mean", "member": hp["net"], "checkpoints": [str(p) for p in paths],
               "num_members": len(paths), "freeze_members": True}  # fmt: skip
        module = QuickDrawModule(net=net, optimizer=hp["optimizer"], classes=hp["classes"],
                                 raster=hp["raster"], data_origin=store_origin)  # fmt: skip
        return module.hparams.data_origin

    assert ensemble(member, member) == "generated"
    assert ensemble(member, origins["qd"]) == "mixed"
    assert ensemble(origins["qd"], origins["qd"], store_origin="quickdraw") == "quickdraw"
    assert ensemble(member, origins["old"]) is None, "one member's data unrecorded: the whole is"


def test_training_on_from_a_checkpoint_adds_its_datas_origin(smoke_run, tiny_config, tmp_path):
    """Weights that learnt Google's drawings, trained on on the generated store: both are credited."""
    import torch

    ckpt = torch.load(
        smoke_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False
    )
    ckpt["hyper_parameters"]["data_origin"] = "quickdraw"
    torch.save(ckpt, google := tmp_path / "google.ckpt")
    out = tmp_path / "run"
    metrics = train(
        tiny_config(out, "experiment=smoke", "trainer.max_epochs=3", f"ckpt_path={google}")
    )
    saved = torch.load(metrics["best_ckpt"], map_location="cpu", weights_only=False)
    assert saved["hyper_parameters"]["data_origin"] == "mixed"
