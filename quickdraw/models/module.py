"""QuickDrawModule: one LightningModule for single ResNets and ensembles, rebuilt from its checkpoint alone.

Every argument is plain data (dicts with ``_target_``, lists, numbers) saved as hyperparameters,
so ``QuickDrawModule.load_from_checkpoint(path, weights_only=True)`` rebuilds the network in the
demo or in evaluation without Hydra configs and without unpickling arbitrary objects.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import hydra
import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import Tensor
from torchmetrics import MaxMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from quickdraw.models import figures
from quickdraw.models.components.ensemble import Ensemble
from quickdraw.models.metrics import split_metrics, worst_fraction_mean

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
    """(logits, target) of the rows to score: padding that evens out DDP shares (``valid`` False) is dropped."""
    valid = batch.get("valid")
    if valid is None:
        return logits, batch["label"]
    valid = valid.to(logits.device)
    return logits[valid], batch["label"][valid]


def _to_unit(images: Tensor) -> Tensor:
    # The loader keeps uint8 (4x less host-to-device traffic); floats are taken as already scaled.
    return images.float() / 255 if images.dtype == torch.uint8 else images


class QuickDrawModule(L.LightningModule):
    """Classifier over uint8 images; ``net`` is any component taking ``num_classes``/``in_channels``.

    loss: a ``quickdraw.models.losses`` config (default plain cross-entropy); val/test losses are
      always plain cross-entropy, so they stay comparable across epochs and runs.
    l2: strength of ``l2 * sum ||w||^2`` over conv/linear weights (not biases, not norms), added
      to the training loss. Unlike AdamW's decoupled ``weight_decay``, the penalty's gradient
      goes through Adam's per-parameter scaling, so it is the classic L2-regularised objective
      the study's penalised ResNet18 used, and it is visible in the logged loss (``train/l2``).
    bootstrap: ``"batch"`` (ensembles only) gives each member its own bootstrap resample of each
      batch, as per-sample multiplicity weights on the member's loss: the same loss as a
      resampled batch, without K extra forward passes (BatchNorm still sees the whole batch).
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
        bootstrap: str = "none",
        log_images_every_n_epochs: int = 1,
        compile: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        net, optimizer, scheduler, loss, classes, raster = map(
            _plain, (net, optimizer, scheduler, loss, classes, raster)
        )
        num_classes = num_classes or len(classes or [])
        if num_classes < 1 or (classes and len(classes) != num_classes):
            raise ValueError(
                f"need num_classes >= 1 matching classes, got {num_classes} and {len(classes or [])} names"
            )
        if bootstrap not in ("none", "batch"):
            raise ValueError(f"bootstrap must be 'none' or 'batch', got {bootstrap!r}")
        self.save_hyperparameters(
            dict(net=net, optimizer=optimizer, scheduler=scheduler, loss=loss, num_classes=num_classes,
                 in_channels=in_channels, classes=classes, raster=raster, l2=l2, bootstrap=bootstrap,
                 log_images_every_n_epochs=log_images_every_n_epochs, compile=compile,
                 channels_last=channels_last)
        )  # fmt: skip
        # _recursive_=False: nets build their own sub-modules (an Ensemble builds K members from one config).
        self.net = hydra.utils.instantiate(
            net, num_classes=num_classes, in_channels=in_channels, _recursive_=False
        )
        self.is_ensemble = isinstance(self.net, Ensemble)
        if bootstrap == "batch" and not self.is_ensemble:
            raise ValueError(
                "bootstrap='batch' resamples per ensemble member; the net is not an Ensemble"
            )
        self.loss = hydra.utils.instantiate(loss or DEFAULT_LOSS, num_classes=num_classes)
        self.classes = classes or [str(i) for i in range(num_classes)]
        self.train_metrics, self.val_metrics, self.test_metrics = (
            split_metrics(num_classes, s) for s in ("train", "val", "test")
        )
        self.val_class_metric = MulticlassAccuracy(num_classes, average=None)
        self.test_class_metric = MulticlassAccuracy(num_classes, average=None)
        self.val_confmat = MulticlassConfusionMatrix(num_classes)
        self.val_map3_best = MaxMetric()
        self.val_map3_best.persistent(True)  # the best survives a resume
        # Per-class val accuracy of the last validation outside sanity checks (None before).
        self.val_class_acc: Tensor | None = None
        self.test_class_acc: Tensor | None = None
        self.samples = figures.SampleReservoir(n=32)
        self._figures_now = False

    # -- inference --------------------------------------------------------------------------------
    def forward(self, images: Tensor) -> Tensor:
        """Logits (log-probs for averaging ensembles) from uint8 images, or floats already in [0, 1]."""
        return self.net(self._prepare(images))

    def _prepare(self, images: Tensor) -> Tensor:
        x = _to_unit(images)
        # NHWC lets cuDNN pick its fastest convolution kernels on tensor-core GPUs.
        return x.contiguous(memory_format=torch.channels_last) if self.hparams.channels_last else x

    @torch.no_grad()
    def predict_proba(self, images: Tensor) -> Tensor:
        """(B, C) class probabilities, in eval mode whatever mode the module was in."""
        was_training = self.training
        self.eval()
        try:
            return self(images.to(self.device)).softmax(dim=-1)
        finally:
            self.train(was_training)

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        return {"probs": self(batch["image"]).softmax(dim=-1), "key_id": batch.get("key_id")}

    # -- training ---------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        images, target = batch["image"], batch["label"]
        if self.is_ensemble:
            member_logits = self.net.forward_members(self._prepare(images))
            logits = self.net.combine_logits(member_logits)
            loss, parts = self.net.training_loss(
                member_logits, logits, target, self.loss, self.hparams.bootstrap == "batch"
            )
            self.log_dict(
                parts, on_step=False, on_epoch=True, sync_dist=True, batch_size=len(target)
            )
        else:
            logits = self(images)
            loss = self.loss(logits, target)
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
            every > 0 and not self.trainer.sanity_checking and self._tensorboard() is not None
            and self.current_epoch % every == 0
        )  # fmt: skip
        self.samples.reset()

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        out = self._eval_step(batch, "val")
        if self._figures_now:
            self.val_confmat.update(out["preds"], out["target"])
            if self.trainer.is_global_zero:
                images = batch["image"] if "valid" not in batch else batch["image"][batch["valid"]]
                self.samples.add(images, out["preds"], out["target"])
        return out

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        return self._eval_step(batch, "test")

    def _eval_step(self, batch: dict[str, Tensor], split: str) -> dict[str, Tensor]:
        logits, target = scored_rows(self(batch["image"]), batch)
        self.log(
            f"{split}/loss",
            # A sum over no rows is 0, and batch_size=0 gives it no weight in the epoch's mean.
            F.cross_entropy(logits, target, reduction="sum") / max(len(target), 1),
            on_epoch=True,
            prog_bar=split == "val",
            sync_dist=True,
            batch_size=len(target),
        )
        if len(target):  # a batch of padding only: torchmetrics refuses empty updates
            getattr(self, f"{split}_metrics").update(logits, target)
            getattr(self, f"{split}_class_metric").update(logits, target)
        return {"preds": logits.argmax(dim=-1), "target": target}

    def _eval_epoch_end(self, split: str) -> tuple[dict[str, Tensor], Tensor]:
        metrics, per_class = (
            getattr(self, f"{split}_metrics"),
            getattr(self, f"{split}_class_metric"),
        )
        # compute() syncs over ranks, so values are identical everywhere; sync_dist=True below only
        # averages equal numbers, and spares DDP users Lightning's epoch-level logging warning.
        values = metrics.compute()
        class_acc = per_class.compute()
        metrics.reset()
        per_class.reset()
        self.log_dict(values, prog_bar=split == "val", sync_dist=True)
        # Logged from the metric's device: a DDP sync of a CPU tensor fails on NCCL.
        self.log(f"{split}/acc_worst10", worst_fraction_mean(class_acc), sync_dist=True)
        return values, class_acc.cpu()

    def on_validation_epoch_end(self) -> None:
        values, class_acc = self._eval_epoch_end("val")
        if self.trainer.sanity_checking:
            return
        self.val_class_acc = class_acc
        self.loss.update(class_acc)
        self.val_map3_best(values["val/map3"])
        self.log("val/map3_best", self.val_map3_best.compute(), sync_dist=True)
        if self._figures_now:
            self._log_figures()

    def on_test_epoch_end(self) -> None:
        self.test_class_acc = self._eval_epoch_end("test")[1]

    def _tensorboard(self) -> TensorBoardLogger | None:
        return next((lg for lg in self.loggers if isinstance(lg, TensorBoardLogger)), None)

    def _log_figures(self) -> None:
        confmat = self.val_confmat.compute()  # a collective: every rank must call it
        self.val_confmat.reset()
        if not self.trainer.is_global_zero or self.samples.images is None:
            return
        writer, step = self._tensorboard().experiment, self.global_step
        s = self.samples
        for tag, fig in (
            ("val/confusion_most_confused", figures.confusion_figure(confmat, self.classes)),
            ("val/predictions", figures.prediction_grid(s.images, s.preds, s.target, self.classes)),
        ):
            writer.add_figure(tag, fig, global_step=step, close=True)

    # -- optimisation -----------------------------------------------------------------------------
    def use_channels_last(self) -> None:
        """NHWC weights, and inputs converted to NHWC in ``forward``."""
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

        ``interval`` is "epoch" (default) or "step". A scheduler taking ``total_steps``
        (OneCycleLR) or ``T_max`` (CosineAnnealingLR) that is not given one gets the run's length
        in that unit: ``trainer.estimated_stepping_batches`` steps, or ``max_epochs`` epochs.
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
            raise ValueError(
                f"{factory.func.__name__} needs {missing[0]}: set it, or a finite max_steps/max_epochs"
            )
        return functools.partial(factory, **{missing[0]: int(length)})

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # A net may hold references to files (ensemble member checkpoints) it no longer needs.
        if hasattr(self.net, "portable_config") and "hyper_parameters" in checkpoint:
            hp = checkpoint["hyper_parameters"]
            checkpoint["hyper_parameters"] = {**hp, "net": self.net.portable_config(hp["net"])}
