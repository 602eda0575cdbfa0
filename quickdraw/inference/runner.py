"""Running a trained model over drawings: input files streamed in batches, probabilities out.

Shared by evaluate, predict and the demo; checkpoints are loaded by :mod:`quickdraw.core.checkpoints`.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from quickdraw.core.files import atomic_open
from quickdraw.data.augment import mirror
from quickdraw.data.inputs import (
    IMAGE,
    Arrays,
    InputSpec,
    build_inputs,
    empty_drawing,
    recorded_inputs,
    to_tensors,
)
from quickdraw.data.raster import RasterSpec
from quickdraw.data.readers import (
    BadRow,
    discover_sources,
    iter_records,
    open_text_file,
    parse_key_id,
    parse_timed_drawing,
)
from quickdraw.data.strokes import StrokeBatch
from quickdraw.data.text import excerpt

log = logging.getLogger(__name__)


def model_inputs(model) -> dict[str, InputSpec]:
    """Every named input the model reads, with the exact spec it was trained with."""
    return recorded_inputs(model.hparams)


def raster_spec(model) -> RasterSpec:
    """The exact rasterisation the model's ``image`` input was trained with.

    Raises ValueError for a model that reads no image (a stroke-sequence network).
    """
    if not model.hparams.get("raster"):
        raise ValueError(
            f"this model reads no image (its inputs: {', '.join(model_inputs(model)) or 'none'})"
        )
    return RasterSpec(**model.hparams.raster)


# Test-time augmentation: the views of each drawing whose probabilities are averaged. ``flip``
# adds the left-right mirror image (strokes mirrored, :func:`quickdraw.data.augment.mirror`), as the
# 2018 Kaggle winners did; it doubles the network's work.
TTA_VIEWS: dict[str, tuple[Callable[[StrokeBatch], StrokeBatch], ...]] = {
    "none": (lambda b: b,),
    "flip": (lambda b: b, mirror),
}


def check_tta(tta: str) -> str:
    if tta not in TTA_VIEWS:
        raise ValueError(f"tta must be one of {', '.join(TTA_VIEWS)}, got {tta!r}")
    return tta


Render = Callable[[StrokeBatch], np.ndarray | dict[str, Arrays]]


@torch.inference_mode()
def predict_proba(
    model,
    strokes: StrokeBatch,
    spec: RasterSpec | None = None,
    tta: str = "none",
    render: Render | None = None,
) -> np.ndarray:
    """Class probabilities (B, C) for a batch of drawings: the one place evaluate, predict and the
    demo turn strokes into probabilities, so test-time augmentation (``tta``) applies to all three.

    ``render`` turns strokes into model inputs: by default every input the checkpoint records
    (:func:`model_inputs`: images, pen-move sequences, several for a mixed ensemble), built by
    :func:`quickdraw.data.inputs.build_inputs`; ``spec`` draws the ``image`` input with another
    raster; the demo passes its untimed renderer for traced photos. A render may return images
    (the ``image`` input) or a dict of named inputs. Ensembles average their members inside
    ``model.predict_proba``; TTA views (mirrored strokes) average on top, for every kind of input.
    """
    if render is None:
        specs = {IMAGE: spec} if spec is not None else model_inputs(model)
        render = lambda batch: build_inputs(specs, batch)  # noqa: E731
    views = TTA_VIEWS[check_tta(tta)]
    probs = [_proba(model, render(view(strokes))) for view in views]
    return probs[0] if len(probs) == 1 else np.mean(probs, axis=0)


def _proba(model, inputs: np.ndarray | dict[str, Arrays]) -> np.ndarray:
    if not isinstance(inputs, dict):
        inputs = {IMAGE: inputs}
    tensors = to_tensors(inputs)
    # A model reading images only gets the tensor, as every backend (ONNX too) takes it.
    x = tensors[IMAGE] if tensors.keys() == {IMAGE} else tensors
    return model.predict_proba(x).float().cpu().numpy()


@torch.inference_mode()
def blank_proba(model, spec: RasterSpec | None = None) -> np.ndarray:
    """(C,) probabilities for an empty canvas: the model's own guess when it sees no drawing.

    The documented fallback for rows whose drawing cannot be read: a checkpoint holds no class
    frequencies, and a blank input is the closest thing the model has to a class prior.
    """
    return predict_proba(model, empty_drawing(), spec)[0]


def batch_proba(
    model,
    batch: InputBatch,
    spec: RasterSpec | None,
    fallback: np.ndarray,
    tta: str = "none",
) -> np.ndarray:
    """(B, C) probabilities for every row of ``batch``; unreadable rows get ``fallback`` (C,)."""
    probs = np.broadcast_to(fallback, (len(batch.key_ids), len(fallback))).copy()
    if batch.readable.any():
        probs[batch.readable] = predict_proba(model, batch.strokes, spec, tta)
    return probs


@dataclass
class InputBatch:
    """Consecutive input rows that have a key_id, in input order.

    ``key_ids``, ``words``, ``lines`` and ``readable`` have one entry per row (B); ``strokes``
    holds the readable rows only (``readable.sum()`` drawings), in the same order, with
    ``strokes.times`` filled when every one of them has times (raw inputs). ``lines``
    says where each row is in its file: a line number (CSV, ndjson), a record number (.bin) or
    a position such as ``test[12]`` (sketch-rnn .npz).
    """

    key_ids: np.ndarray
    words: list[str | None]
    strokes: StrokeBatch
    lines: list[int | str | None]
    readable: np.ndarray


@dataclass
class Unreadable:
    """A row with a key_id whose drawing cannot be read: it still gets a guess (or an error)."""

    source: str
    line: int | str | None
    key_id: int
    reason: str
    detail: str


@dataclass
class InputStats:
    rows: int = 0
    bad: Counter = field(default_factory=Counter)
    unreadable: list[Unreadable] = field(default_factory=list)
    first_seen: dict[int, tuple[str, int | None]] = field(default_factory=dict, repr=False)


def iter_input(
    path: str | Path, batch_size: int, stats: InputStats, max_bytes: int = 16 << 30
) -> Iterator[InputBatch]:
    """Stream every row with a key_id (any format the converter reads, raw ndjson included) in batches.

    A row whose drawing cannot be read stays in its batch with ``readable`` False and is listed
    in ``stats.unreadable`` with its line; a row without a usable key_id cannot be answered and
    is only counted (``stats.bad``) and logged. Raises ValueError naming both lines at a key_id
    met a second time: Kaggle refuses a submission that lists a key_id twice, and an evaluation
    would score that drawing twice.
    """
    rows: list[tuple] = []  # (key_id, word, line, (points, lengths, times) or None)

    def flush() -> InputBatch:
        batch = StrokeBatch.from_parsed([r[3] for r in rows if r[3] is not None])
        out = InputBatch(
            np.array([r[0] for r in rows], np.int64),
            [r[1] for r in rows],
            batch,
            [r[2] for r in rows],
            np.array([r[3] is not None for r in rows], bool),
        )
        rows.clear()
        return out

    for source in discover_sources(path):
        for record in iter_records(source, max_bytes, require_word=False):
            stats.rows += 1
            line = record.line if isinstance(record, BadRow) else record[0]
            try:
                if isinstance(record, BadRow):
                    raise record
                key_id = parse_key_id(record[1])
            except BadRow as e:
                _count_bad(stats, source.name, line, e)
                continue
            word = (
                record[2] if isinstance(record[2], str) and record[2] else None
            )  # ndjson: any JSON value
            try:
                drawing = parse_timed_drawing(record[6])  # times kept for raw inputs
            except BadRow as e:
                _count_bad(stats, source.name, line, e)
                stats.unreadable.append(Unreadable(source.name, line, key_id, e.reason, e.detail))
                drawing = None
            first = stats.first_seen.setdefault(key_id, (source.name, line))
            if first != (source.name, line):
                raise ValueError(
                    f"{source.name} line {line}: key_id {key_id} again (first at {first[0]} line "
                    f"{first[1]}); each drawing must appear once: remove the repeated rows"
                )
            rows.append((key_id, word, line, drawing))
            if len(rows) >= batch_size:
                yield flush()
    if rows:
        yield flush()


def _count_bad(stats: InputStats, source: str, line: int | None, e: BadRow) -> None:
    stats.bad[e.reason] += 1
    if stats.bad[e.reason] <= 3:
        log.warning("%s line %s: %s %s", source, line, e.reason, e.detail)


def write_unreadable(path: Path, unreadable: list[Unreadable], guess: str = "") -> None:
    """The side file listing unreadable rows: source, line, key_id, reason, detail (and the guess given)."""
    with atomic_open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["source", "line", "key_id", "reason", "detail"] + (["guess"] if guess else []))
        for u in unreadable:
            w.writerow(
                [u.source, u.line, u.key_id, u.reason, u.detail] + ([guess] if guess else [])
            )


def word_key(word: str) -> str:
    """The spelling-free form of a class name: ``The_Eiffel_Tower``, `` the eiffel tower`` -> ``the eiffel tower``.

    Kaggle's files (and ``predict``'s output) write spaces as underscores; people change case
    and leave spaces around words. No two Quick, Draw! classes differ only in these.
    """
    return " ".join(word.replace("_", " ").split()).casefold()


class LabelMatcher:
    """Maps labels in any accepted spelling to class ids and remembers those that name no class."""

    def __init__(self, classes: list[str]):
        self.index = {word_key(c): i for i, c in enumerate(classes)}
        self.unmatched: Counter = Counter()
        self.matched = 0

    def __call__(self, word: str | None) -> int | None:
        """The class id of ``word``; None for a missing label, or (counted) a word naming no class."""
        if word is None:
            return None
        c = self.index.get(word_key(word))
        if c is None:
            self.unmatched[word] += 1
        else:
            self.matched += 1
        return c

    def report(self) -> dict:
        """``{"count": N, "first": [words...]}`` for the labels that matched no class."""
        return {"count": sum(self.unmatched.values()), "first": list(self.unmatched)[:5]}


def load_labels(path: str | Path) -> dict[int, str]:
    """``key_id,word`` (Kaggle's test_labels.csv layout) into a dict.

    A key_id listed again with the same word (in any spelling :func:`word_key` accepts) is kept
    once; with another word it is a ValueError naming the key_id, both words and their lines:
    which one is right cannot be guessed, and letting the last one win changes every metric.
    """
    with open_text_file(path) as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"key_id", "word"} <= {
            h.strip() for h in reader.fieldnames
        }:
            raise ValueError(
                f"{path}: expected columns key_id,word, found {excerpt(reader.fieldnames)}"
            )
        reader.fieldnames = [h.strip() for h in reader.fieldnames]
        labels: dict[int, str] = {}
        lines: dict[int, int] = {}
        for r in reader:
            try:
                key = int(r["key_id"])
            except (TypeError, ValueError):
                raise ValueError(
                    f"{path} line {reader.line_num}: key_id {excerpt(r['key_id'], 40)} is not an integer"
                ) from None
            if key in labels and _label_key(labels[key]) != _label_key(r["word"]):
                raise ValueError(
                    f"{path}: key_id {key} has two labels, {excerpt(labels[key], 60)} on line "
                    f"{lines[key]} and {excerpt(r['word'], 60)} on line {reader.line_num}; "
                    "a drawing has one label: remove the wrong line"
                )
            labels.setdefault(key, r["word"])
            lines.setdefault(key, reader.line_num)
        return labels


def _label_key(word: str | None) -> str | None:
    return word_key(word) if word else None
