"""sketch-rnn's `.npz` files (`sketchrnn/<word>.npz`): stroke-3 drawings in and out of the store's frame.

Magenta's sketch-rnn data (Ha & Eck 2017; the Quick, Draw! data documentation, "Sketch-RNN
QuickDraw Dataset") holds arrays `train`, `valid` and `test` (70,000 / 2,500 / 2,500 a class),
each an object array of drawings in **stroke-3** format: an (n, 3) int16 array of rows
`(dx, dy, pen_lifted)`, the offset from the previous point (the first from (0, 0)), and
`pen_lifted = 1` where a stroke ends after that point.

Into the store's frame, the rule is Google's simplification without its resampling and RDP
(sketch-rnn's points are already RDP-simplified, epsilon 2.0): absolute points are the running
sums of the offsets; the drawing is moved so its top-left corner is (0, 0), scaled uniformly so
its longer side is 255 (a single dot stays where it is), rounded to integers, and a point equal to
the one before it in its stroke after rounding is dropped. Files written by `write_npz`
(marked by a `frame` array) already hold store coordinates and are read back unchanged.

Rows carry the `key_id` of an `<split>_key_id` array when the file has one (exports do);
otherwise a stable synthetic one: the first 8 bytes of BLAKE2b of `"<word>/<split>/<index>"`
as a little-endian integer with the top bit cleared, so the same file gives the same ids (and
splits) on every machine, whatever folder it lies in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np

from quickdraw.data.formats.base import (
    INT64_MAX,
    BadRow,
    InputFile,
    ParsedDrawing,
    QuickDrawFormatError,
    Record,
)
from quickdraw.data.formats.safe_npz import load_npz
from quickdraw.data.strokes import StrokeBatch

# sketch-rnn's array names and the store's splits they become.
SPLIT_NAMES = {"train": "train", "valid": "val", "test": "test"}
FRAME_KEY, FRAME = "frame", "quickdraw-store-0-255"  # marks exports: points already in the frame


def iter_records(source: InputFile, max_bytes: int) -> Iterator[Record | BadRow]:
    """Yield `("<split>[<index>]", key_id, word, None, None, None, ParsedDrawing)` for each drawing.

    The whole file is loaded (safely, see `safe_npz`): object arrays cannot be streamed, and a
    class's file is tens of MB. Raises `QuickDrawFormatError` naming the file when it has none of
    the three arrays, or one that is not a 1-D array of drawings.
    """
    arrays = load_npz(source, max_bytes)
    names = [n for n in SPLIT_NAMES if n in arrays]
    if not names:
        raise QuickDrawFormatError(
            f"{source.name}: no train, valid or test array (it holds {sorted(arrays)[:8]}); "
            "not a sketch-rnn .npz"
        )
    in_frame = FRAME_KEY in arrays
    for name in names:
        drawings = arrays[name]
        if drawings.ndim == 3 and drawings.shape[2] == 3:
            drawings = list(drawings)  # equal-length drawings saved as one (N, n, 3) array
        elif drawings.ndim != 1:
            raise QuickDrawFormatError(
                f"{source.name}: array {name!r} has shape {drawings.shape}, expected a 1-D array "
                "of (n, 3) stroke-3 drawings"
            )
        keys = _key_ids(source, arrays, name, len(drawings))
        split, word = SPLIT_NAMES[name], source.class_name
        for i, decoded in enumerate(decode(drawings, in_frame)):
            where = f"{name}[{i}]"
            if isinstance(decoded, BadRow):
                yield BadRow(decoded.reason, decoded.detail, where)
                continue
            yield (where, keys[i], word, None, None, None, ParsedDrawing(*decoded, split))


def _key_ids(source: InputFile, arrays: dict, name: str, n: int) -> list[int]:
    keys = arrays.get(f"{name}_key_id")
    if keys is None:
        prefix = f"{source.class_name}/{name}/"
        return [synthetic_key_id(prefix + str(i)) for i in range(n)]
    if keys.shape != (n,) or not np.issubdtype(keys.dtype, np.integer):
        raise QuickDrawFormatError(
            f"{source.name}: {name}_key_id is {keys.dtype} {keys.shape}, expected {n} integers"
        )
    return keys.tolist()


def synthetic_key_id(name: str) -> int:
    """A stable key_id for a drawing without one: 63 bits of BLAKE2b of `name`."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & INT64_MAX


def stroke3_to_points(drawing, in_frame: bool = False) -> tuple[np.ndarray, list[int]]:
    """One stroke-3 drawing, (n, 3) integers, as (P, 2) uint8 points in the 0-255 frame and stroke lengths.

    `in_frame`: the running sums are store coordinates already (exports): kept as they are, and
    ones outside 0-255 are a bad row. Otherwise the module's rule moves and scales them.
    Raises `BadRow` (`bad_structure`, `empty_drawing`, `out_of_range`).
    """
    (out,) = decode([drawing], in_frame)
    if isinstance(out, BadRow):
        raise out
    return out


def decode(drawings, in_frame: bool = False) -> list[tuple[np.ndarray, list[int]] | BadRow]:
    """`stroke3_to_points` of many drawings at once: numpy over all their rows, not per drawing."""
    out: list = [None] * len(drawings)
    good = []
    for i, d in enumerate(drawings):
        problem = _shape_problem(d)
        if problem:
            out[i] = problem
        else:
            good.append(i)
    if not good:
        return out
    sizes = np.array([len(drawings[i]) for i in good], np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rows = np.concatenate([drawings[i] for i in good]).astype(np.int64)
    pen = rows[:, 2]
    bad_pen = np.logical_or.reduceat((pen != 0) & (pen != 1), starts)
    xy = np.cumsum(rows[:, :2], axis=0)
    xy -= np.repeat(xy[starts] - rows[starts, :2], sizes, axis=0)  # each drawing from (0, 0)
    lo, hi = np.minimum.reduceat(xy, starts), np.maximum.reduceat(xy, starts)
    new_stroke = np.zeros(len(rows), bool)
    new_stroke[starts] = True
    new_stroke[1:] |= pen[:-1] == 1
    if in_frame:
        outside = (lo.min(axis=1) < 0) | (hi.max(axis=1) > 255)
        points = np.clip(xy, 0, 255).astype(np.uint8)
        keep = np.ones(len(rows), bool)
    else:
        outside = np.zeros(len(good), bool)
        extent = (hi - lo).max(axis=1)
        scale = np.where(extent > 0, 255.0 / np.maximum(extent, 1), 1.0)
        xy = (xy - np.repeat(lo, sizes, axis=0)) * np.repeat(scale, sizes)[:, None]
        points = np.rint(xy).astype(np.uint8)
        keep = np.ones(len(rows), bool)
        keep[1:] = (points[1:] != points[:-1]).any(axis=1)
        keep |= new_stroke  # every stroke keeps its first point
    lengths = np.bincount(np.cumsum(new_stroke)[keep] - 1).tolist()
    points = points[keep]
    point_ends = np.cumsum(np.add.reduceat(keep, starts)).tolist()
    stroke_ends = np.cumsum(np.add.reduceat(new_stroke, starts)).tolist()
    p0 = s0 = 0
    for j, i in enumerate(good):
        p1, s1 = point_ends[j], stroke_ends[j]
        if bad_pen[j]:
            out[i] = BadRow("bad_structure", "pen_lifted values other than 0 and 1")
        elif outside[j]:
            span = f"{lo[j].min()}..{hi[j].max()}"
            out[i] = BadRow("out_of_range", f"coordinates span {span}, expected 0..255")
        else:
            out[i] = (points[p0:p1], lengths[s0:s1])
        p0, s0 = p1, s1
    return out


def _shape_problem(drawing) -> BadRow | None:
    if not isinstance(drawing, np.ndarray) or drawing.ndim != 2 or drawing.shape[1] != 3:
        shape = getattr(drawing, "shape", type(drawing).__name__)
        return BadRow("bad_structure", f"a drawing is {shape}, stroke-3 wants (n, 3)")
    if not np.issubdtype(drawing.dtype, np.integer):
        return BadRow("bad_structure", f"stroke-3 values are {drawing.dtype}, not integers")
    if len(drawing) == 0:
        return BadRow("empty_drawing")
    return None


def batch_to_stroke3(batch: StrokeBatch) -> list[np.ndarray]:
    """Each drawing of a batch (points in the 0-255 frame) as an (n, 3) int16 stroke-3 array.

    Each drawing's first offset is from (0, 0), so `stroke3_to_points(..., in_frame=True)`
    gives its points back exactly.
    """
    xy = np.asarray(batch.points, np.int16)
    out = np.zeros((len(xy), 3), np.int16)
    out[1:, :2] = np.diff(xy, axis=0)
    starts = batch.stroke_offsets[batch.drawing_offsets[:-1]]
    out[starts, :2] = xy[starts]
    out[batch.stroke_offsets[1:] - 1, 2] = 1
    return np.split(out, starts[1:])
