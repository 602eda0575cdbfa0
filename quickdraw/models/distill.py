"""Knowledge distillation: a student trained on the labels and on a frozen teacher's softened guesses.

Hinton, Vinyals & Dean, "Distilling the knowledge in a neural network" (2015): the student
minimises `(1 - alpha) * CE(student, label) + alpha * T^2 * KL(p_teacher,T || p_student,T)`, where
`p_T = softmax(logits / T)`. A temperature above 1 shows the student which wrong classes the
teacher finds close ("a cloud more like a sheep than a bus"); `T^2` keeps that term's gradients
on the scale of the cross-entropy's as T changes (section 2 of the paper).

The teacher is one or more checkpoints of this project, loaded by
[`load_model`][quickdraw.models.loading.load_model] (the `_target_` allow-list, `weights_only=True`),
frozen and in eval mode; several are averaged as an ensemble is (the log of their mean
probabilities), so the best ensemble can be one trained `Ensemble` checkpoint or separate runs.
It reads the same augmented batch as the student, each model its own inputs: a stroke
Transformer student can learn from a raster ResNet teacher, since the data then serves both
inputs ([`QuickDrawModule.training_input_names`][quickdraw.models.module.QuickDrawModule.training_input_names]).
The teacher is loaded when training starts, not when a student checkpoint is rebuilt for
inference, so a student runs without its teacher's file; the checkpoint records each teacher's
path and SHA-256 (`hyper_parameters.objective.teacher_sha256`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from quickdraw.core.errors import SettingError
from quickdraw.data.inputs import InputSpec, recorded_inputs
from quickdraw.models.losses import soft_target_kl
from quickdraw.models.objectives import Criterion


class Distill:
    """Objective `(1 - alpha) * criterion(student, label) + alpha * T^2 * KL(teacher_T || student_T)`.

    teacher: a checkpoint path, or a list of them (averaged). alpha in [0, 1]: the weight of the
    teacher's term (0: plain training). temperature: T > 0, in units of logits.
    teacher_sha256: the teachers' expected SHA-256 digests (a resumed run's record); a file whose
    digest differs is refused.
    """

    def __init__(
        self,
        teacher: str | Sequence[str],
        alpha: float = 0.5,
        temperature: float = 4.0,
        teacher_sha256: Sequence[str] | None = None,
    ) -> None:
        paths = [teacher] if isinstance(teacher, str | Path) else list(teacher or [])
        if not paths or any(not p for p in paths):
            raise SettingError(
                "distillation needs a teacher: model.objective.teacher=PATH (a checkpoint of this "
                "project, e.g. outputs/train/runs/RUN/checkpoints/best.ckpt) or a list of them"
            )
        if not 0.0 <= alpha <= 1.0:
            raise SettingError(f"model.objective.alpha={alpha}: must lie in [0, 1]")
        if not temperature > 0:
            raise SettingError(f"model.objective.temperature={temperature}: must be > 0")
        if teacher_sha256 is not None and len(teacher_sha256) != len(paths):
            raise SettingError(
                f"{len(teacher_sha256)} teacher_sha256 digests for {len(paths)} teachers"
            )
        self.paths = [str(p) for p in paths]
        self.alpha, self.temperature = float(alpha), float(temperature)
        self.expected = list(teacher_sha256) if teacher_sha256 is not None else None
        self.teachers: list[nn.Module] = []
        self.digests: list[str] = []

    # -- the teacher ------------------------------------------------------------------------------
    def bind(self, offered: Mapping[str, InputSpec], classes: Sequence[str]) -> list[str]:
        """Load the teachers (once) and check them against the student's data; returns the
        names of the inputs they read, which the data must serve.

        Raises SettingError for a missing file, a changed file (`teacher_sha256`), a teacher
        with other classes, or one whose input the data offers with another spec.
        """
        if not self.teachers:
            from quickdraw.models.loading import (
                load_model,
            )  # loading imports the module, which imports this

            for i, path in enumerate(self.paths):
                digest = _sha256(path)
                if self.expected is not None and self.expected[i] != digest:
                    raise SettingError(
                        f"teacher {path} has changed since this run recorded it (SHA-256 "
                        f"{digest[:12]}..., recorded {self.expected[i][:12]}...); restore that file "
                        "or start a new run"
                    )
                teacher = load_model(path).requires_grad_(False)
                self.teachers.append(teacher)
                self.digests.append(digest)
        names: list[str] = []
        for path, teacher in zip(self.paths, self.teachers, strict=True):
            if list(teacher.hparams.classes) != list(classes):
                raise SettingError(
                    f"teacher {path} knows {len(teacher.hparams.classes)} classes, the student's "
                    f"data {len(classes)} (or another order); distil from a model trained on "
                    "the same store"
                )
            for name, spec in recorded_inputs(teacher.hparams).items():
                given = offered.get(name)
                if given != spec:
                    raise SettingError(
                        f"teacher {path} reads input {name!r} as {spec.describe()}, which the data "
                        + (f"offers as {given.describe()}" if given else "does not offer")
                        + f"; set data.{'raster' if name == 'image' else 'inputs.' + name} to the "
                        "teacher's spec (the student reads it too if it shares the input)"
                    )
                names.append(name)
        return list(dict.fromkeys(names))

    def record(self) -> dict[str, Any]:
        """What the checkpoint keeps of the teachers: their digests (paths are in the config)."""
        return {"teacher_sha256": list(self.digests)} if self.digests else {}

    @torch.no_grad()
    def teacher_logits(self, batch: Mapping[str, Any]) -> Tensor:
        """(B, C) log of the teachers' mean probabilities on the batch (each reads its inputs)."""
        if not self.teachers:
            raise SettingError(
                "the teacher is not loaded: train through quickdraw.train (or call "
                "module.training_input_names() before fitting)"
            )
        logs = []
        for path, teacher in zip(self.paths, self.teachers, strict=True):
            missing = [n for n in teacher.input_names if n not in batch]
            if missing:
                raise SettingError(
                    f"teacher {path} reads {missing}, which the batches lack: serve "
                    "module.training_input_names() (quickdraw.train does)"
                )
            device = batch["label"].device
            if teacher.device != device:
                teacher.to(device)
            teacher.eval()  # Lightning's train() calls never reach it: it is no submodule
            logs.append(teacher(teacher.batch_inputs(batch)).float().log_softmax(dim=-1))
        return torch.logsumexp(torch.stack(logs), dim=0) - math.log(len(logs))

    # -- the objective ----------------------------------------------------------------------------
    def __call__(
        self,
        net: nn.Module,
        x: Any,
        target: Tensor,
        criterion: Criterion,
        batch: Mapping[str, Any] | None = None,
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        if batch is None:
            raise SettingError("Distill needs the whole batch: call it with batch=...")
        logits = net(x)
        hard = criterion(logits, target)
        soft = soft_target_kl(logits, self.teacher_logits(batch), self.temperature)
        loss = (1 - self.alpha) * hard + self.alpha * soft
        return loss, logits, {"train/loss_hard": hard.detach(), "train/loss_soft": soft.detach()}


def _sha256(path: str) -> str:
    file = Path(path)
    if not file.is_file():
        raise SettingError(
            f"model.objective.teacher: {path} is not a file; give a checkpoint of this project "
            "(outputs/train/runs/RUN/checkpoints/best.ckpt)"
        )
    digest = hashlib.sha256()
    with file.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
