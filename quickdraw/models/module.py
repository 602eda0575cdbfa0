"""QuickDrawModule: one LightningModule for single ResNets and ensembles, rebuilt from its checkpoint alone.

Every argument is plain data (dicts with `_target_`, lists, numbers) saved as hyperparameters,
so [`quickdraw.models.loading.load_model`][quickdraw.models.loading.load_model] rebuilds the network in the demo or in evaluation
without Hydra configs and without unpickling arbitrary objects.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import hydra
import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import Tensor
from torchmetrics import MaxMetric
from torchmetrics.classification import MulticlassConfusionMatrix

import quickdraw
from quickdraw.core.checkpoints import VERSION_KEY
from quickdraw.core.errors import SettingError
from quickdraw.data.inputs import IMAGE, recorded_inputs, spec_config, spec_from_config
from quickdraw.data.origin import combined_origin
from quickdraw.data.raster import RasterSpec
from quickdraw.metrics.classification import class_accuracy, split_metrics, worst_fraction_mean
from quickdraw.models import figures
from quickdraw.models.components.ensemble import Ensemble
from quickdraw.models.components.factory import build_net, input_names, net_input
from quickdraw.models.objectives import EnsembleMembers, Plain

DEFAULT_LOSS = {"_target_": "quickdraw.models.losses.CrossEntropy"}
# Scheduler keys that are Lightning's, not the scheduler's (see configure_optimizers).
LIGHTNING_SCHEDULER_KEYS = ("interval", "frequency", "monitor")


def _plain(value: Any) -> Any:
    return (
        OmegaConf.to_container(value, resolve=True)
        if isinstance(value, DictConfig | ListConfig)
        else value
    )


def scored_rows(logits: Tensor, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """(logits, target) of the rows to score: padding that evens out DDP shares (`valid` False) is dropped."""
    valid = batch.get("valid")
    if valid is None:
        return logits, batch["label"]
    valid = valid.to(logits.device)
    return logits[valid], batch["label"][valid]


def _to_unit(images: Tensor) -> Tensor:
    # The loader keeps uint8 (4x less host-to-device traffic); floats are taken as already scaled.
    return images.float() / 255 if images.dtype == torch.uint8 else images


class QuickDrawModule(L.LightningModule):
    """Classifier over drawings; `net` is any component taking `num_classes`/`in_channels`.

    raster / inputs: the named inputs the data offers ([`quickdraw.data.inputs`][quickdraw.data.inputs]): `raster`
      describes `image` (uint8 images), `inputs` the others as plain `{"kind": ...}` dicts.
      The net reads one of them (`net.input`, default `image`), an ensemble's members each
      their own; the checkpoint keeps exactly the ones read (`raster` None when no net reads
      `image`), and [`input_names`][quickdraw.models.components.factory.input_names] tells the DataModule what to build.

    loss: a `quickdraw.models.losses` config (default plain cross-entropy); val/test losses are
      always plain cross-entropy, so they stay comparable across epochs and runs.
    l2: strength of `l2 * sum ||w||^2` over conv/linear weights (not biases, not norms), added
      to the training loss. Unlike AdamW's decoupled `weight_decay`, the penalty's gradient
      goes through Adam's per-parameter scaling, so it is the classic L2-regularised objective
      the study's penalised ResNet18 used, and it is visible in the logged loss (`train/l2`).
    objective: a [`quickdraw.models.objectives`][quickdraw.models.objectives] config: how the net's outputs and the loss
      make the training loss (default: `Plain`, or `EnsembleMembers` for ensembles, whose
      `bootstrap=true` gives each member its own bootstrap resample of every batch).
    data_origin: where the training drawings came from (the store manifest's `origin`:
      `"quickdraw"`, `"generated"`, `"mixed"`; None or `""`: not recorded), kept in the
      checkpoint for exports, whose credit line must not claim Quick, Draw! data for generated
      doodles ([`quickdraw.data.origin`][quickdraw.data.origin]).
    """

    def __init__(
        self,
        net: dict,
        optimizer: dict,
        scheduler: dict | None = None,
        loss: dict | None = None,
        num_classes: int = 0,
        in_channels: int = 1,
        classes: list[str] | None = None,
        raster: dict | None = None,
        l2: float = 0.0,
        objective: dict | None = None,
        log_images_every_n_epochs: int = 1,
        compile: bool = False,
        channels_last: bool = False,
        inputs: dict | None = None,
        data_origin: str | None = None,
    ) -> None:
        super().__init__()
        net, optimizer, scheduler, loss, classes, raster, objective, inputs = map(
            _plain, (net, optimizer, scheduler, loss, classes, raster, objective, inputs)
        )
        num_classes = num_classes or len(classes or [])
        if num_classes < 1 or (classes and len(classes) != num_classes):
            raise SettingError(
                f"need num_classes >= 1 matching classes, got {num_classes} and {len(classes or [])} names"
            )
        offered = {n: spec_from_config(c) for n, c in (inputs or {}).items()}
        channels = {IMAGE: in_channels, **{n: spec.channels for n, spec in offered.items()}}
        self.net = build_net(net, num_classes, channels)
        self.input_names = input_names(self.net)
        # Every input the data offers, before the record below keeps the net's: a teacher
        # (quickdraw.models.distill) may read another one.
        self._offered = {**({IMAGE: RasterSpec(**raster)} if raster else {}), **offered}
        # The checkpoint records the inputs the net reads, no others.
        raster = raster if IMAGE in self.input_names else None
        inputs = {n: spec_config(offered[n]) for n in self.input_names if n != IMAGE} or None
        # Members loaded from checkpoints bring their own data: the ensemble learnt from all of it.
        loaded = getattr(self.net, "member_hparams", [])
        if loaded:
            # One member's data unrecorded: the whole is unknown (combined_origin gives None).
            data_origin = combined_origin([data_origin, *(h.get("data_origin") for h in loaded)])
        # Every argument as it now stands (plain containers, num_classes filled in, inputs read):
        # Lightning reads them from this frame's locals.
        self.save_hyperparameters()
        _check_member_inputs(self.net, recorded_inputs(self.hparams))
        is_ensemble = isinstance(self.net, Ensemble)
        self.objective = (
            hydra.utils.instantiate(objective)
            if objective
            else (EnsembleMembers() if is_ensemble else Plain())
        )
        if isinstance(self.objective, EnsembleMembers) and not is_ensemble:
            raise SettingError(
                "objective EnsembleMembers trains ensemble members; the net is not an Ensemble"
            )
        self.loss = hydra.utils.instantiate(loss or DEFAULT_LOSS, num_classes=num_classes)
        self.classes = classes or [str(i) for i in range(num_classes)]
        self.train_metrics, self.val_metrics, self.test_metrics = (
            split_metrics(num_classes, s) for s in ("train", "val", "test")
        )
        # Confusion counts per split: per-class accuracy (adaptive quotas, class weights, the
        # worst-decile metric) and the confusion figure all come from them.
        self.val_confmat = MulticlassConfusionMatrix(num_classes)
        self.test_confmat = MulticlassConfusionMatrix(num_classes)
        self.val_map3_best = MaxMetric()
        self.val_map3_best.persistent(True)  # the best survives a resume
        # (C,) per-class accuracy of the last validation outside sanity checks / of the last test.
        self.val_class_acc: np.ndarray | None = None
        self.test_class_acc: np.ndarray | None = None
        self._class_acc_now: np.ndarray | None = None
        self.samples = figures.SampleReservoir(n=32)
        self._figures_now = False

    # -- inference --------------------------------------------------------------------------------
    def forward(self, inputs: Tensor | dict[str, Any]) -> Tensor:
        """Logits (log-probs for averaging ensembles) from the named inputs ([`batch_inputs`][quickdraw.models.module.QuickDrawModule.batch_inputs]),
        or from a tensor of uint8 images (or floats already in [0, 1]) for the `image` input."""
        return self.net(net_input(self.net, self._prepare(inputs)))

    def _prepare(self, inputs: Tensor | dict[str, Any]) -> dict[str, Any]:
        if isinstance(inputs, Tensor):
            inputs = {IMAGE: inputs}
        return {name: self._prepare_images(x) for name, x in inputs.items()}

    def _prepare_images(self, x: Any) -> Any:
        if not isinstance(x, Tensor) or x.ndim != 4:
            return x  # not images (pen-move sequences and their lengths)
        x = _to_unit(x)
        # NHWC lets cuDNN pick its fastest convolution kernels on tensor-core GPUs.
        return x.contiguous(memory_format=torch.channels_last) if self.hparams.channels_last else x

    def training_input_names(self) -> list[str]:
        """The inputs training reads: the net's, then those of a teacher the objective loads
        (distillation, which checks the teacher against the data here)."""
        bind = getattr(self.objective, "bind", None)
        extra = bind(self._offered, self.classes) if bind else []
        return list(dict.fromkeys([*self.input_names, *extra]))

    def batch_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        """The named inputs this model reads, out of a loader batch."""
        return {name: batch[name] for name in self.input_names}

    @torch.no_grad()
    def predict_proba(self, inputs: Tensor | dict[str, Any]) -> Tensor:
        """(B, C) class probabilities, in eval mode whatever mode the module was in."""
        was_training = self.training
        self.eval()
        try:
            return self(move_data_to_device(inputs, self.device)).softmax(dim=-1)
        finally:
            self.train(was_training)

    # -- training ---------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        x, target = net_input(self.net, self._prepare(self.batch_inputs(batch))), batch["label"]
        loss, logits, parts = self.objective(self.net, x, target, self.loss, batch=batch)
        if parts:
            self.log_dict(
                parts, on_step=False, on_epoch=True, sync_dist=True, batch_size=len(target)
            )
        if self.hparams.l2 > 0:
            penalty = self.hparams.l2 * sum(
                p.pow(2).sum() for p in self.parameters() if p.requires_grad and p.ndim > 1
            )
            self.log("train/l2", penalty, on_step=True, on_epoch=True, batch_size=len(target))
            loss = loss + penalty
        self.train_metrics(logits.detach(), target)
        self.log(
            "train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(target)
        )
        self.log_dict(self.train_metrics, on_step=True, on_epoch=True, batch_size=len(target))
        return loss

    # -- evaluation -------------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        every = self.hparams.log_images_every_n_epochs
        self._figures_now = (
            every > 0
            and not self.trainer.sanity_checking
            and bool(self._figure_loggers())
            and self.current_epoch % every == 0
        )
        self.samples.reset()
        self._class_acc_now = None

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        preds, target = self._eval_step(batch, "val")
        if self._figures_now and self.trainer.is_global_zero and IMAGE in batch:
            images = batch["image"] if "valid" not in batch else batch["image"][batch["valid"]]
            self.samples.add(images, preds, target)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def _eval_step(self, batch: dict[str, Tensor], split: str) -> tuple[Tensor, Tensor]:
        """Update the split's metrics and confusion counts with the batch's scored rows (DDP
        padding left out); returns their (N,) top-1 predictions and targets."""
        logits, target = scored_rows(self(self.batch_inputs(batch)), batch)
        self.log(
            f"{split}/loss",
            # A sum over no rows is 0, and batch_size=0 gives it no weight in the epoch's mean.
            F.cross_entropy(logits, target, reduction="sum") / max(len(target), 1),
            on_epoch=True,
            prog_bar=split == "val",
            sync_dist=True,
            batch_size=len(target),
        )
        preds = logits.argmax(dim=-1)
        if len(target):  # a batch of padding only: torchmetrics refuses empty updates
            getattr(self, f"{split}_metrics").update(logits, target)
            getattr(self, f"{split}_confmat").update(preds, target)
        return preds, target

    def val_class_accuracy(self) -> np.ndarray:
        """(C,) per-class accuracy of the validation that just ended, over every rank; NaN for
        classes without drawings. Computed once per validation from the confusion counts (the
        adaptive sampler, the class-weighted loss and `val/acc_worst10` share it); call it on
        every rank under DDP (the first call reduces the counts across ranks)."""
        if self._class_acc_now is None:
            self._class_acc_now = class_accuracy(self.val_confmat.compute())
        return self._class_acc_now

    def _eval_epoch_end(self, split: str, class_acc: np.ndarray) -> dict[str, Tensor]:
        metrics, confmat = getattr(self, f"{split}_metrics"), getattr(self, f"{split}_confmat")
        # compute() syncs over ranks, so values are identical everywhere; sync_dist=True below only
        # averages equal numbers, and spares DDP users Lightning's epoch-level logging warning.
        values = metrics.compute()
        metrics.reset()
        self.log_dict(values, prog_bar=split == "val", sync_dist=True)
        worst = torch.tensor(worst_fraction_mean(class_acc, 0.1), device=self.device)
        self.log(f"{split}/acc_worst10", worst, sync_dist=True)
        if split == "val" and self._figures_now:
            self._log_figures(confmat.compute())
        confmat.reset()
        return values

    def on_validation_epoch_end(self) -> None:
        class_acc = self.val_class_accuracy()
        values = self._eval_epoch_end("val", class_acc)
        if self.trainer.sanity_checking:
            return
        self.val_class_acc = class_acc
        self.loss.update(class_acc)
        self.val_map3_best(values["val/map3"])
        self.log("val/map3_best", self.val_map3_best.compute(), sync_dist=True)

    def on_test_epoch_end(self) -> None:
        self.test_class_acc = class_accuracy(self.test_confmat.compute())
        self._eval_epoch_end("test", self.test_class_acc)

    def _figure_loggers(self) -> list[Any]:
        """The loggers that take figures: TensorBoard (images by step) and MLflow (artifacts)."""
        return [lg for lg in self.loggers if isinstance(lg, TensorBoardLogger | MLFlowLogger)]

    def _log_figures(self, confmat: Tensor) -> None:
        if not self.trainer.is_global_zero or self.samples.images is None:
            return
        s, step = self.samples, self.global_step
        for tag, fig in (
            ("val/confusion_most_confused", figures.confusion_figure(confmat, self.classes)),
            ("val/predictions", figures.prediction_grid(s.images, s.preds, s.target, self.classes)),
        ):
            for logger in self._figure_loggers():
                if isinstance(logger, TensorBoardLogger):
                    logger.experiment.add_figure(tag, fig, global_step=step, close=False)
                else:  # one PNG per validation: figures/val/predictions/epoch_003.png
                    name = f"figures/{tag}/epoch_{self.current_epoch:03d}.png"
                    logger.experiment.log_figure(logger.run_id, fig, name)

    # -- optimisation -----------------------------------------------------------------------------
    def use_channels_last(self) -> None:
        """NHWC weights, and inputs converted to NHWC in `forward`."""
        self.hparams.channels_last = True
        self.net.to(memory_format=torch.channels_last)

    def configure_model(self) -> None:
        if self.hparams.channels_last:
            self.use_channels_last()
        # Module.compile() compiles in place: state-dict keys stay free of "_orig_mod." prefixes.
        if self.hparams.compile and getattr(self.net, "_compiled_call_impl", None) is None:
            self.net.compile()

    def configure_optimizers(self) -> Any:
        """Optimizer over trainable parameters; scheduler keys interval/frequency/monitor go to Lightning.

        `interval` is "epoch" (default) or "step". A scheduler taking `total_steps`
        (OneCycleLR) or `T_max` (CosineAnnealingLR) that is not given one gets the run's length
        in that unit: `trainer.estimated_stepping_batches` steps, or `max_epochs` epochs.
        """
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            raise RuntimeError(
                "the model has no trainable parameters (frozen averaging ensemble?): evaluate it instead"
            )
        opt = hydra.utils.instantiate(self.hparams.optimizer)(params)
        if not self.hparams.scheduler:
            return opt
        cfg = dict(self.hparams.scheduler)
        extra = {key: cfg.pop(key) for key in LIGHTNING_SCHEDULER_KEYS if key in cfg}
        extra.setdefault("interval", "epoch")
        factory = hydra.utils.instantiate(cfg)
        sched = self._with_run_length(factory, extra["interval"])(opt)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, **extra}}

    def _with_run_length(self, factory: functools.partial, interval: str) -> functools.partial:
        accepted, given = inspect.signature(factory.func).parameters, factory.keywords
        missing = [n for n in ("total_steps", "T_max") if n in accepted and n not in given]
        # OneCycleLR(epochs=, steps_per_epoch=) is complete without total_steps.
        if not missing or "epochs" in given:
            return factory
        trainer = self.trainer
        length = trainer.estimated_stepping_batches if interval == "step" else trainer.max_epochs
        if length is None or length < 1 or length == float("inf"):
            raise SettingError(
                f"{factory.func.__name__} needs {missing[0]}: set it, or a finite max_steps/max_epochs"
            )
        return functools.partial(factory, **{missing[0]: int(length)})

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Which quickdraw wrote it: a later version that cannot rebuild it says so by name.
        checkpoint[VERSION_KEY] = quickdraw.__version__
        # A net may hold references to files (ensemble member checkpoints) it no longer needs.
        if hasattr(self.net, "portable_config") and "hyper_parameters" in checkpoint:
            hp = checkpoint["hyper_parameters"]
            checkpoint["hyper_parameters"] = {**hp, "net": self.net.portable_config(hp["net"])}
        # A distilled student names its teachers (config) and their digests (quickdraw.models.distill).
        record = getattr(self.objective, "record", None)
        if record and record() and "hyper_parameters" in checkpoint:
            hp = checkpoint["hyper_parameters"]
            checkpoint["hyper_parameters"] = {**hp, "objective": {**hp["objective"], **record()}}


def _check_member_inputs(net: Any, inputs: dict[str, Any]) -> None:
    """Ensemble members loaded from runs must read the input they were trained on (same spec)."""
    members, loaded = getattr(net, "members", []), getattr(net, "member_hparams", [])
    for i, (member, hparams) in enumerate(zip(members, loaded, strict=False)):
        own = (hparams.get("net") or {}).get("input") or IMAGE
        trained = recorded_inputs(hparams).get(own)
        given = inputs.get(member.input_name)
        if trained is not None and given is not None and trained != given:
            raise SettingError(
                f"ensemble member {i} was trained on {trained} but would read {given} "
                f"(input {member.input_name!r}): set the data's input to the member's spec"
            )
