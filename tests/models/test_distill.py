"""Knowledge distillation: the loss is Hinton et al.'s formula, a student trains against a frozen
teacher (another input included), records its teacher and runs without it; bad teachers are refused."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from quickdraw.core.errors import SettingError
from quickdraw.models.distill import Distill
from quickdraw.models.loading import load_model
from quickdraw.models.losses import CrossEntropy, soft_target_kl
from quickdraw.training.fit import train
from tests.helpers.checkpoints import save_untrained
from tests.helpers.configs import RESNET


def numpy_kd(student: np.ndarray, teacher: np.ndarray, target: np.ndarray, alpha: float, t: float):
    """(1-alpha)*CE + alpha*T^2*KL(p_teacher,T || p_student,T), written out with numpy."""

    def softmax(z):
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    ce = -np.log(softmax(student)[np.arange(len(target)), target]).mean()
    p_t, p_s = softmax(teacher / t), softmax(student / t)
    kl = (p_t * (np.log(p_t) - np.log(p_s))).sum(1).mean()
    return (1 - alpha) * ce + alpha * t * t * kl


@pytest.mark.parametrize("alpha,t", [(0.5, 4.0), (0.9, 1.0), (0.0, 2.0)])
def test_the_loss_is_hintons_formula_on_hand_made_logits(alpha, t):
    student = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    teacher = np.array([[1.0, 1.5, -2.0], [-1.0, 0.0, 4.0]])
    target = np.array([0, 2])
    objective = Distill(teacher="unused.ckpt", alpha=alpha, temperature=t)
    objective.teacher_logits = lambda batch: torch.tensor(teacher, dtype=torch.float32)
    net = lambda x: x  # noqa: E731  the student's logits are its input here
    loss, logits, parts = objective(
        net, torch.tensor(student, dtype=torch.float32), torch.tensor(target), CrossEntropy(3),
        batch={"label": torch.tensor(target)},
    )  # fmt: skip
    assert loss.item() == pytest.approx(numpy_kd(student, teacher, target, alpha, t), rel=1e-5)
    kl = soft_target_kl(torch.tensor(student), torch.tensor(teacher), t)
    assert parts["train/loss_soft"].item() == pytest.approx(kl.item(), rel=1e-5)
    assert soft_target_kl(torch.tensor(teacher), torch.tensor(teacher), t).item() == pytest.approx(
        0, abs=1e-6
    )


def test_settings_are_checked_where_they_are_given():
    with pytest.raises(SettingError, match="alpha"):
        Distill(teacher="t.ckpt", alpha=1.5)
    with pytest.raises(SettingError, match="temperature"):
        Distill(teacher="t.ckpt", temperature=0)
    with pytest.raises(SettingError, match="teacher"):
        Distill(teacher=[])
    with pytest.raises(SettingError, match="not a file"):
        Distill(teacher="missing.ckpt").bind({}, ["a"])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def teacher(smoke_run, tmp_path_factory) -> Path:
    """A copy of the smoke run's ResNet18 (gray 32 px images, the tiny store's classes)."""
    best = Path(json.loads((smoke_run / "metrics.json").read_text())["best_ckpt"])
    return Path(shutil.copy(best, tmp_path_factory.mktemp("teacher") / "teacher.ckpt"))


@pytest.mark.parametrize("student", [
    ["model.net.name=mobilenetv3_small_050", "data.sampling=adaptive"],
    # another input than the teacher's: pen moves for the student, images for the teacher
    ["model=strokes_transformer", "model.net.layers=1", "model.net.d_model=32", "model.net.ff=64",
     "data.sampling=fixed"],
])  # fmt: skip
def test_a_student_trains_records_its_teacher_and_runs_without_it(
    student, teacher, tiny_config, tmp_path
):
    own = Path(shutil.copy(teacher, tmp_path / "teacher.ckpt"))
    cfg = tiny_config(tmp_path / "run", "experiment=distill", f"model.objective.teacher={own}",
                      "trainer.max_epochs=1", *student)  # fmt: skip
    metrics = train(cfg)
    assert {"test/acc", "test/map3", "train/loss_soft", "train/loss_hard"} <= set(metrics)
    ckpt = torch.load(metrics["best_ckpt"], map_location="cpu", weights_only=True)
    recorded = ckpt["hyper_parameters"]["objective"]
    assert recorded["teacher"] == str(own) and recorded["teacher_sha256"] == [sha256(own)]
    assert not any(k.startswith("objective") for k in ckpt["state_dict"])  # no teacher weights
    own.unlink()  # a student is served without its teacher's file
    model = load_model(metrics["best_ckpt"])
    assert model.input_names == (["image"] if "model.net.name" in student[0] else ["sequence"])
    if "image" in model.input_names:
        pytest.importorskip("onnxruntime", reason="the export extra is not installed")
        from quickdraw.deploy.onnx import export_onnx
        from quickdraw.deploy.runtime import load_backend

        images = torch.randint(0, 2, (16, 1, 32, 32), dtype=torch.uint8) * 255
        export_onnx(model, tmp_path / "onnx")
        got = load_backend(tmp_path / "onnx" / "model.onnx", "onnx").probabilities(images.numpy())
        np.testing.assert_allclose(got, model.predict_proba(images).numpy(), atol=1e-4)


def test_a_teacher_of_other_classes_or_a_changed_file_is_refused(teacher, tmp_path):
    from quickdraw.data.raster import RasterSpec

    offered = {"image": RasterSpec(size=32)}
    classes = list(load_model(teacher).hparams.classes)
    other = save_untrained(tmp_path / "other.ckpt", RESNET, classes=["cat", "dog"])
    with pytest.raises(SettingError, match="2 classes"):
        Distill(teacher=str(other)).bind(offered, classes)
    with pytest.raises(SettingError, match="has changed"):
        Distill(teacher=str(teacher), teacher_sha256=["0" * 64]).bind(offered, classes)
    with pytest.raises(SettingError, match="data.raster"):
        Distill(teacher=str(teacher)).bind({"image": RasterSpec(size=64)}, classes)
    assert Distill(teacher=[str(teacher)] * 2).bind(offered, classes) == ["image"]
