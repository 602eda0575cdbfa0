"""AtomicCheckpointIO: checkpoints appear under their final name complete or not at all, even on a full disk.

Lightning's default writer builds the file in the system temporary folder and moves it into place;
when the run folder is on another filesystem (a mounted volume, /tmp in RAM) the move is a copy
that truncates ``last.ckpt`` first, so a full disk or a kill mid-copy leaves a broken checkpoint
under a final name. This writer streams to a hidden file next to the target, syncs it, and renames
it over the old one (atomic within a filesystem); on failure the old file is untouched and the
error says which checkpoints are still good.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

# Disk full, file too large, over quota: the same advice for each.
FULL = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


class CheckpointWriteError(OSError):
    """A checkpoint could not be written; the checkpoints already on disk are intact."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` for local paths, writing through a temporary file and ``os.replace``."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        if "://" in str(path):  # remote storage (s3://, gs://): fsspec's own transactions apply
            return super().save_checkpoint(checkpoint, path, storage_options)
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException as e:
            tmp.unlink(missing_ok=True)
            if isinstance(e, OSError):
                raise CheckpointWriteError(e.errno, _message(path, e)) from e
            raise


def _message(path: Path, error: OSError) -> str:
    kept = [p for p in path.parent.glob("*.ckpt") if p.is_file()]
    kept.sort(key=lambda p: p.stat().st_mtime_ns, reverse=True)
    why = "the disk is full" if error.errno in FULL else (error.strerror or str(error))
    return (
        f"cannot write checkpoint {path}: {why}. Nothing was written under its name; the "
        f"checkpoints already in {path.parent} are intact"
        + (f" (newest: {kept[0].name})" if kept else " (none saved yet)")
        + ". Free some space and resume with ckpt_path=last."
    )
