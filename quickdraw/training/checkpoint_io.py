"""Lightning's checkpoint writer for this project: atomic, and one line when the disk is full."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from quickdraw.core.checkpoints import CheckpointWriteError
from quickdraw.core.files import OUT_OF_SPACE, atomic_open


class AtomicCheckpointIO(TorchCheckpointIO):
    """`TorchCheckpointIO` for local paths, writing through [`quickdraw.core.files.atomic_open`][quickdraw.core.files.atomic_open].

    So a full disk or a kill never leaves half a checkpoint under a final name (Lightning's default
    writer may truncate `last.ckpt` when the run folder is on another filesystem than the
    temporary folder).
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        if "://" in str(path):  # remote storage (s3://, gs://): fsspec's own transactions apply
            return super().save_checkpoint(checkpoint, path, storage_options)
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        path = Path(path)
        try:
            with atomic_open(path, "wb") as f:
                torch.save(checkpoint, f)
        except OSError as e:
            raise CheckpointWriteError(e.errno, _write_error(path, e)) from e


def _write_error(path: Path, error: OSError) -> str:
    kept = [p for p in path.parent.glob("*.ckpt") if p.is_file()]
    kept.sort(key=lambda p: p.stat().st_mtime_ns, reverse=True)
    why = "the disk is full" if error.errno in OUT_OF_SPACE else (error.strerror or str(error))
    return (
        f"cannot write checkpoint {path}: {why}. Nothing was written under its name; the "
        f"checkpoints already in {path.parent} are intact"
        + (f" (newest: {kept[0].name})" if kept else " (none saved yet)")
        + ". Free some space and resume with ckpt_path=last."
    )
