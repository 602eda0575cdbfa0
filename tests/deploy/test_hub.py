"""`export format=hub`: a model folder that evaluate, predict, the demo and export load as they load a
checkpoint, without unpickling anything; bad folders get errors that name the file and the fix."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from quickdraw import cli
from quickdraw.core.checkpoints import CheckpointError
from quickdraw.core.runs import RunDir
from quickdraw.models.hub import CONFIG, WEIGHTS, ModelFolderError
from quickdraw.models.loading import load_model
from quickdraw.serving.guesser import Guesser
from tests.helpers.checkpoints import save_untrained
from tests.helpers.commands import run_export
from tests.helpers.configs import RESNET, compose_config


@pytest.fixture(scope="module")
def hub_dir(smoke_run, tmp_path_factory) -> Path:
    """The smoke run's best checkpoint as a model folder."""
    return run_export(tmp_path_factory.mktemp("hub"), f"run_dir={smoke_run}", "format=hub")


def evaluate(ckpt: Path, store: Path, out: Path) -> dict:
    cfg = compose_config("evaluate", [f"ckpt_path={ckpt}", f"store={store}"])
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    return cli.evaluate.__wrapped__(cfg)


def no_unpickling(*args, **kwargs):
    raise AssertionError("something was unpickled")


def test_the_folder_holds_what_model_hubs_expect(hub_dir, smoke_run):
    names = {p.name for p in hub_dir.iterdir()}
    assert {WEIGHTS, CONFIG, "README.md", "model.onnx", "model.json"} <= names
    config = json.loads((hub_dir / CONFIG).read_text())
    model = load_model(RunDir(smoke_run).best_checkpoint())
    assert config["classes"] == list(model.hparams.classes)
    assert config["input"]["image"]["shape"] == ["batch", 1, 32, 32]
    assert config["input"]["image"]["raster"]["thickness"] >= 1
    assert config["data"]["origin"] == "generated"
    assert config["hyper_parameters"]["net"]["_target_"].startswith("quickdraw.models.")
    assert config["metrics"]["test/map3"] == RunDir(smoke_run).metrics()["test/map3"]
    card = (hub_dir / "README.md").read_text()
    for part in ("## Architecture", "## Classes", "## Data and licence", "## Metrics",
                 "## Preprocessing contract", "## How to load it", "test/map3"):  # fmt: skip
        assert part in card, part


def test_evaluate_gives_the_checkpoints_metrics_without_unpickling(
    hub_dir, smoke_run, tiny_store, tmp_path, monkeypatch
):
    from_ckpt = evaluate(RunDir(smoke_run).best_checkpoint(), tiny_store, tmp_path / "a")
    for module, name in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"),
                         (torch, "load"), (torch.serialization, "load")):  # fmt: skip
        monkeypatch.setattr(module, name, no_unpickling)
    from_folder = evaluate(hub_dir, tiny_store, tmp_path / "b")
    assert from_folder == from_ckpt and from_folder["test/map3"] > 0


def test_the_folder_serves_the_demo_and_exports_again(hub_dir, demo_drawings, tmp_path):
    guesser = Guesser(load_model(hub_dir))
    assert guesser.guess_strokes(demo_drawings[0][1]).top
    again = run_export(tmp_path / "again", f"ckpt_path={hub_dir}", "format=hub")
    assert (
        json.loads((again / CONFIG).read_text())["metrics"]
        == json.loads((hub_dir / CONFIG).read_text())["metrics"]
    )


def test_bad_folders_get_errors_naming_the_file_and_the_fix(hub_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelFolderError, match="config.json is missing.*format=hub"):
        load_model(empty)
    broken = tmp_path / "broken"
    shutil.copytree(hub_dir, broken)
    (broken / WEIGHTS).unlink()
    with pytest.raises(ModelFolderError, match=f"{WEIGHTS}: missing"):
        load_model(broken)
    (broken / WEIGHTS).write_bytes(b"not safetensors")
    with pytest.raises(ModelFolderError, match="not a readable safetensors file"):
        load_model(broken)
    shutil.copy(hub_dir / WEIGHTS, broken / WEIGHTS)
    config = json.loads((broken / CONFIG).read_text())
    (broken / CONFIG).write_text(json.dumps({**config, "classes": config["classes"][:-1]}))
    with pytest.raises(ModelFolderError, match="differs from hyper_parameters.classes"):
        load_model(broken)
    crafted = {**config, "hyper_parameters": {**config["hyper_parameters"],
               "net": {"_target_": "builtins.exec", "source": "1"}}}  # fmt: skip
    (broken / CONFIG).write_text(json.dumps(crafted))
    with pytest.raises(CheckpointError, match="names code outside this project"):
        load_model(broken)
    (broken / CONFIG).write_text(json.dumps({**config, "format": "quickdraw-onnx"}))
    with pytest.raises(ModelFolderError, match="not 'quickdraw-hub'"):
        load_model(broken)


def test_an_ensemble_travels_with_its_members(tmp_path, demo_drawings):
    member = save_untrained(tmp_path / "member.ckpt", RESNET)
    net = {"_target_": "quickdraw.models.components.ensemble.Ensemble", "member": RESNET,
           "checkpoints": [str(member), str(member)]}  # fmt: skip
    ckpt = save_untrained(tmp_path / "ensemble.ckpt", net)
    drawing = demo_drawings[0][1]
    before = Guesser(load_model(ckpt)).guess_strokes(drawing).top
    folder = run_export(tmp_path / "hub", f"ckpt_path={ckpt}", "format=hub")
    member.unlink()  # the folder needs no member file: their weights are inside
    config = json.loads((folder / CONFIG).read_text())
    assert config["hyper_parameters"]["net"]["checkpoints"] is None
    assert config["arch"].startswith("ensemble of 2")
    after = Guesser(load_model(folder)).guess_strokes(drawing).top
    assert [w for w, _ in after] == [w for w, _ in before]
    assert [p for _, p in after] == pytest.approx([p for _, p in before], abs=1e-6)


def test_a_file_of_the_folder_as_ckpt_path_says_to_pass_the_folder(tmp_path):
    from quickdraw.deploy.hub import export_hub

    (tmp_path / CONFIG).write_text(json.dumps({"format": "quickdraw-hub"}))
    for name in (WEIGHTS, CONFIG):
        (tmp_path / WEIGHTS).write_bytes(b"weights")
        for load in (load_model, lambda p: export_hub(p, tmp_path / "out")):
            with pytest.raises(
                ModelFolderError, match=f"pass the folder itself, ckpt_path={tmp_path}$"
            ):
                load(tmp_path / name)
