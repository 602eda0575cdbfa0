"""Running a trained model over drawings: input files streamed in batches, probabilities out.

Shared by evaluate, predict and the demo; checkpoints are loaded by :mod:`quickdraw.checkpoints`.
"""

from __future__ import annotations

import csv
import logging
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
        batch = StrokeBatch.from_parsed(list(zip(drawings, lens, strict=True)))
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
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"key_id", "word"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected columns key_id,word, found {reader.fieldnames}")
        return {int(r["key_id"]): r["word"] for r in reader}
