"""Loading a trained checkpoint safely and running it over drawings: shared by evaluate, predict and the demo."""

from __future__ import annotations

import importlib
import logging
import pickle
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from quickdraw.data.raster import RasterSpec, to_tensor
from quickdraw.data.readers import (
    BadRow,
    discover_sources,
    iter_records,
    parse_drawing,
    parse_key_id,
)
from quickdraw.data.strokes import StrokeBatch

log = logging.getLogger(__name__)


# Packages whose classes and functions a checkpoint may name as Hydra ``_target_``s: rebuilding the
# model instantiates them, so a crafted file naming anything else (``builtins.open``) would run it.
TRUSTED_TARGETS = ("quickdraw.models.", "torch.optim.")


class CheckpointError(ValueError):
    """A file that is not a loadable checkpoint of this project."""


def untrusted_targets(value, where: str = "hyper_parameters") -> list[str]:
    """Every ``_target_`` in ``value`` that is not a module-level class or function of TRUSTED_TARGETS.

    The module part must import as a module and the object must be defined under a trusted package,
    so ``quickdraw.models.x.Path.touch`` (an attribute walk to another module) is refused too.
    Lightning's ``_instantiator`` hook is never used by this project and always refused.
    """
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{where}.{key}"
            if key == "_instantiator" or (key == "_target_" and not _trusted(item)):
                found.append(f"{here}={str(item)[:100]!r}")
            elif key != "_target_":
                found += untrusted_targets(item, here)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found += untrusted_targets(item, f"{where}[{i}]")
    return found


def _trusted(target) -> bool:
    if not isinstance(target, str) or not target.startswith(TRUSTED_TARGETS) or "." not in target:
        return False
    module_name, name = target.rsplit(".", 1)
    try:
        obj = getattr(importlib.import_module(module_name), name, None)
    except ImportError:
        return False
    return callable(obj) and str(getattr(obj, "__module__", "")).startswith(TRUSTED_TARGETS)


def load_model(ckpt_path: str | Path, map_location: str = "cpu"):
    """A trained QuickDrawModule in eval mode, loaded with ``weights_only=True`` (no code runs from the file).

    ``weights_only`` stops pickled code; the hyperparameters' ``_target_`` names are checked
    before anything is built from them.
    """
    from quickdraw.models.module import QuickDrawModule

    path = Path(ckpt_path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        hparams = ckpt.get("hyper_parameters", {}) if isinstance(ckpt, dict) else {}
        del ckpt
        refused = untrusted_targets(hparams)
        if refused:
            raise CheckpointError(
                f"{path} names code outside this project to build its model ({'; '.join(refused[:3])}); "
                f"refusing to load it (allowed: {', '.join(p + '*' for p in TRUSTED_TARGETS)})"
            )
        model = QuickDrawModule.load_from_checkpoint(
            path, map_location=map_location, weights_only=True
        )
    except (
        pickle.UnpicklingError,
        RuntimeError,
        EOFError,
        zipfile.BadZipFile,
        KeyError,
        TypeError,
        AttributeError,
    ) as e:
        raise CheckpointError(
            f"{path} is not a checkpoint of this project, or it holds objects that are not plain data; "
            f"refusing to load it (loading with weights_only=True). Details: {str(e).splitlines()[0][:300]}"
        ) from e
    for key in ("classes", "raster"):
        if not model.hparams.get(key):
            raise CheckpointError(
                f"{path}: checkpoint lacks '{key}' in its hyperparameters; not a quickdraw model"
            )
    # NHWC weights and inputs: oneDNN's fastest CPU convolutions (ResNet18 at 64 px on one core:
    # 13.6 -> 7.5 ms a drawing, scripts/bench_demo.py) and cuDNN's on recent GPUs.
    model.use_channels_last()
    return model.eval()


def raster_spec(model) -> RasterSpec:
    """The exact rasterisation the model was trained with."""
    return RasterSpec(**model.hparams.raster)


@torch.inference_mode()
def predict_proba(model, strokes: StrokeBatch, spec: RasterSpec | None = None) -> np.ndarray:
    """Class probabilities (B, C) for a batch of drawings."""
    images = to_tensor((spec or raster_spec(model))(strokes)).to(model.device)
    return model.predict_proba(images).float().cpu().numpy()


@dataclass
class InputBatch:
    key_ids: np.ndarray
    words: list[str | None]
    strokes: StrokeBatch


@dataclass
class InputStats:
    rows: int = 0
    bad: Counter = field(default_factory=Counter)


def iter_input(
    path: str | Path, batch_size: int, stats: InputStats, max_bytes: int = 16 << 30
) -> Iterator[InputBatch]:
    """Stream drawings (any format the converter reads, raw ndjson included) in batches; bad rows are counted."""
    keys: list[int] = []
    words: list[str | None] = []
    drawings: list[np.ndarray] = []
    lens: list[list[int]] = []

    def flush() -> InputBatch:
        pts = np.concatenate(drawings).astype(np.float32)
        stroke_lens = np.concatenate([np.asarray(x, np.int64) for x in lens])
        batch = StrokeBatch(
            pts,
            np.concatenate([[0], np.cumsum(stroke_lens)]),
            np.concatenate([[0], np.cumsum([len(x) for x in lens])]),
        )
        out = InputBatch(np.asarray(keys, np.int64), list(words), batch)
        keys.clear(), words.clear(), drawings.clear(), lens.clear()
        return out

    for source in discover_sources(path):
        for record in iter_records(source, max_bytes, require_word=False):
            stats.rows += 1
            try:
                if isinstance(record, BadRow):
                    raise record
                _, key_id, word, _, _, _, drawing = record
                k = parse_key_id(key_id)
                pts, stroke_lens = parse_drawing(drawing)
            except BadRow as e:
                stats.bad[e.reason] += 1
                if stats.bad[e.reason] <= 3:
                    log.warning("%s line %s: %s %s", source.name, e.line, e.reason, e.detail)
                continue
            keys.append(k)
            words.append(word if isinstance(word, str) and word else None)  # ndjson: any JSON value
            drawings.append(pts)
            lens.append(stroke_lens)
            if len(keys) >= batch_size:
                yield flush()
    if keys:
        yield flush()


def load_labels(path: str | Path) -> dict[int, str]:
    """``key_id,word`` (Kaggle's test_labels.csv layout) into a dict."""
    import csv

    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"key_id", "word"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected columns key_id,word, found {reader.fieldnames}")
        return {int(r["key_id"]): r["word"] for r in reader}
