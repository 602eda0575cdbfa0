"""Settings that cannot run together on this machine: adapted with a one-line notice, or refused
before any work starts with the config to use instead (not an error from deep inside PyTorch)."""

from __future__ import annotations

import logging
import multiprocessing

import torch
from omegaconf import DictConfig, open_dict

from quickdraw.core.errors import SettingError

log = logging.getLogger(__name__)


class IncompatibleSettings(SettingError):
    """Settings that cannot work together; the message names the config to use."""


def _gpu_requested(trainer: DictConfig) -> bool:
    return str(trainer.get("accelerator", "auto")) in ("gpu", "cuda")


def _uses_gpu(trainer: DictConfig) -> bool:
    accelerator = str(trainer.get("accelerator", "auto"))
    return torch.cuda.is_available() and accelerator in ("gpu", "cuda", "auto")


def reconcile(cfg: DictConfig) -> list[str]:
    """Refuse ([`IncompatibleSettings`][quickdraw.training.settings_check.IncompatibleSettings]) or adapt `cfg` in place; returns the notices logged.

    Refused: SyncBatchNorm or a GPU accelerator without a GPU. Adapted: bf16 on a GPU without
    bf16 (to 16-mixed), `data.pin_memory` without a GPU (off), DataLoader workers where
    processes cannot fork (none: spawned workers would re-import the run's whole state).
    """
    trainer, data = cfg.trainer, cfg.get("data")
    has_gpu = torch.cuda.is_available()
    if trainer.get("sync_batchnorm") and not (has_gpu and _uses_gpu(trainer)):
        raise IncompatibleSettings(
            "trainer.sync_batchnorm (hardware=ddp) needs GPUs, and "
            f"{'trainer.accelerator=' + str(trainer.get('accelerator')) if has_gpu else 'this machine has none'}: "
            "for DDP on CPU processes use trainer=ddp_cpu [trainer.devices=2]"
        )
    if _gpu_requested(trainer) and not has_gpu:
        raise IncompatibleSettings(
            f"trainer.accelerator={trainer.accelerator} but PyTorch sees no GPU: "
            "use trainer=cpu (or trainer=ddp_cpu for several processes)"
        )
    notices = []
    with open_dict(cfg):
        bf16 = str(trainer.get("precision", "")).startswith("bf16")
        if bf16 and _uses_gpu(trainer) and not torch.cuda.is_bf16_supported():
            trainer.precision = "16-mixed"
            notices.append("this GPU has no bf16: trainer.precision=16-mixed instead")
        if data is not None and data.get("pin_memory") and not (has_gpu and _uses_gpu(trainer)):
            data.pin_memory = False
            notices.append(
                "no GPU in use: data.pin_memory=false (page-locked memory only helps copies to a GPU)"
            )
        if (
            data is not None
            and data.get("num_workers", 0) > 0
            and "fork" not in multiprocessing.get_all_start_methods()
        ):
            notices.append(
                f"this platform cannot fork processes: data.num_workers={data.num_workers} -> 0"
            )
            data.num_workers = 0
    for notice in notices:
        log.warning("%s", notice)
    return notices
