"""Strokes to pixels: the one rasteriser shared by training, evaluation and the demo.

Every drawing is mapped from the 0-255 Quick, Draw! frame onto a `size` x `size` canvas with
one uniform scale (aspect preserved) and a border `margin` wide enough for the line, then
drawn with OpenCV in fixed point (`shift` bits give sub-pixel endpoints at integer cost).

Encodings (`ENCODINGS`: name -> channels):

* `gray`     1 channel, ink 255 on 0.
* `temporal` 3 channels that keep the order the drawing was made in, which a plain bitmap loses:
  ch0 ink (the gray image), ch1 stroke order (first stroke 255 fading linearly to 80 for the last),
  ch2 progress in time over the whole drawing at point resolution (every segment gets the
  colour of its position in the drawing's sequence of points, 255 early -> 80 late), so even the
  direction of a single stroke is visible. 80 rather than 0 keeps late ink distinct from paper.
  Point index rather than arc length measures time (`time_source="order"`): it is what the
  simplified data keeps of the pen's rhythm, and it does not change under augmentation. With
  `time_source="ms"` ch2 uses the recorded times instead (`StrokeBatch.times`, ms; raw
  sources and the demo): each segment's colour is the midpoint of its two points' times over the
  drawing's span, so pauses between strokes and the pen's speed show. A batch without times is
  refused (`MissingTimes`, naming the fix): a model trained on real time has never seen point
  order in that channel, and a silent fallback would feed it inputs it was not trained on.
  Later segments paint over earlier ones where they cross, as ink on paper would.

Speed is the point: `gray` issues one `cv2.polylines` call per drawing with the list of its
strokes; `temporal` needs one `cv2.line` per segment, as OpenCV takes one colour per call,
so it is several times slower (figures: `python -m benchmarks.data`, docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch

from quickdraw.core.errors import InputError, SettingError
from quickdraw.data.strokes import StrokeBatch

ENCODINGS: dict[str, int] = {"gray": 1, "temporal": 3}
TIME_SOURCES = ("order", "ms")  # what the temporal encoding's time channel measures

SHIFT = 4  # fixed-point fraction bits handed to OpenCV: 1/16 px endpoint precision
_ONE = 1 << SHIFT
_FIRST, _LAST = 255, 80  # temporal colour ramp, early -> late
# Order/time value of ink drawn at no known moment (traced images): the middle of the ramp.
UNTIMED = (_FIRST + _LAST) // 2
# Far-off points (wild augmentation, bad input) are clamped here so fixed point cannot overflow int32.
_LIMIT = float(1 << (30 - SHIFT))


class MissingTimes(InputError):
    """A `time_source="ms"` raster was asked to draw drawings that carry no per-point times."""


@dataclass(frozen=True)
class RasterSpec:
    """How drawings become images; stored in checkpoints, so only plain fields."""

    size: int = 64
    encoding: str = "gray"
    line_width: float | None = (
        None  # OpenCV thickness, rounded; None: size / 32 (2 at 64, 4 at 128)
    )
    antialias: bool = False
    margin: float | None = None  # free px at each border; None: just enough for the line
    time_source: str = "order"  # temporal's time channel: point order, or recorded ms ("ms")

    def __post_init__(self) -> None:
        if self.encoding not in ENCODINGS:
            raise SettingError(f"unknown encoding {self.encoding!r}; valid: {sorted(ENCODINGS)}")
        if self.time_source not in TIME_SOURCES:
            raise SettingError(f"unknown time_source {self.time_source!r}; valid: {TIME_SOURCES}")
        if self.size < 8:
            raise SettingError(f"size must be at least 8, got {self.size}")
        if self.line_width is not None and self.line_width <= 0:
            raise SettingError(f"line_width must be positive, got {self.line_width}")
        if self.margin is not None and not 0 <= self.margin < (self.size - 1) / 2:
            raise SettingError(f"margin must be in [0, {(self.size - 1) / 2}), got {self.margin}")

    @property
    def channels(self) -> int:
        return ENCODINGS[self.encoding]

    @property
    def thickness(self) -> int:
        """The integer thickness OpenCV draws with."""
        width = self.size / 32 if self.line_width is None else self.line_width
        return max(1, round(width))

    @property
    def border(self) -> float:
        """Margin in px: OpenCV's line reaches (thickness + 1) // 2 px from its axis, AA one more."""
        if self.margin is not None:
            return float(self.margin)
        return float((self.thickness + 1) // 2 + int(self.antialias))

    def describe(self) -> str:
        return f"{self.size} px {self.encoding} image"

    def __call__(self, batch: StrokeBatch) -> np.ndarray:
        return rasterize(batch, self)


def rasterize(batch: StrokeBatch, spec: RasterSpec, out: np.ndarray | None = None) -> np.ndarray:
    """Draw a batch into uint8 images of shape (B, spec.channels, spec.size, spec.size)."""
    shape = (len(batch), spec.channels, spec.size, spec.size)
    if out is None:
        out = np.zeros(shape, np.uint8)
    else:
        if out.shape != shape or out.dtype != np.uint8 or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous uint8 array of shape {shape}")
        out.fill(0)
    if len(batch.points) == 0:
        return out
    fixed = _to_fixed(batch.points, spec)
    line_type = cv2.LINE_AA if spec.antialias else cv2.LINE_8
    if spec.encoding == "gray":
        _draw_gray(
            out[:, 0], fixed, batch.stroke_offsets, batch.drawing_offsets, spec.thickness, line_type
        )
    else:
        if spec.time_source == "ms" and batch.times is None:
            raise MissingTimes(
                "this model's temporal encoding uses recorded times (raster.time_source=ms), but "
                "these drawings have none (a simplified source?): give it raw drawings with "
                "[xs, ys, ts] strokes (Google's raw ndjson, Kaggle's raw CSV, a store converted "
                "from them), or use a model trained with raster.time_source=order"
            )
        hwc = np.zeros((len(batch), spec.size, spec.size, 3), np.uint8)
        _draw_temporal(hwc, fixed, batch, spec.thickness, line_type, spec.time_source == "ms")
        np.copyto(out, hwc.transpose(0, 3, 1, 2))
    return out


def rasterize_untimed(batch: StrokeBatch, spec: RasterSpec) -> np.ndarray:
    """(B, C, H, W) uint8 for drawings whose stroke order and timing are unknown (traced images).

    The ink channel is drawn as usual; channels that encode order or time get the middle of the
    early-to-late ramp wherever there is ink ("drawn at no particular moment") rather than an
    invented order. For `gray` this is just `spec(batch)`.
    """
    ink = rasterize(batch, replace(spec, encoding="gray"))
    if spec.channels == 1:
        return ink
    time_planes = (ink * np.float32(UNTIMED / 255)).astype(np.uint8)
    return np.concatenate([ink] + [time_planes] * (spec.channels - 1), axis=1)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """Zero-copy uint8 tensor; models scale to [0, 1] themselves so batches travel as bytes."""
    return torch.from_numpy(images)


def _to_fixed(points: np.ndarray, spec: RasterSpec) -> np.ndarray:
    """(P, 2) points in the 0-255 frame -> int32 canvas coordinates with SHIFT fraction bits."""
    scale = (spec.size - 1 - 2 * spec.border) / 255 * _ONE
    offset = spec.border * _ONE
    if points.dtype == np.uint8:
        # 256 possible values: one table lookup replaces multiply, round and cast.
        lut = np.rint(np.arange(256) * scale + offset).astype(np.int32)
        return lut[points]
    fixed = np.asarray(points, np.float32) * np.float32(scale) + np.float32(offset)
    np.clip(fixed, -_LIMIT, _LIMIT, out=fixed)
    return np.rint(fixed, out=fixed).astype(np.int32)


def _draw_gray(
    planes: np.ndarray,
    fixed: np.ndarray,
    stroke_offsets: np.ndarray,
    drawing_offsets: np.ndarray,
    thickness: int,
    line_type: int,
) -> None:
    fixed, stroke_offsets = _double_dots(fixed, stroke_offsets)
    starts = stroke_offsets[:-1].tolist()
    stops = stroke_offsets[1:].tolist()
    strokes = [fixed[a:b] for a, b in zip(starts, stops, strict=True)]
    bounds = drawing_offsets.tolist()
    polylines = cv2.polylines
    for img, s0, s1 in zip(planes, bounds[:-1], bounds[1:], strict=True):
        polylines(img, strokes[s0:s1], False, 255, thickness, line_type, SHIFT)


def _double_dots(fixed: np.ndarray, stroke_offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Repeat the point of one-point strokes: OpenCV draws no segment, hence nothing, for them."""
    lengths = np.diff(stroke_offsets)
    dots = lengths == 1
    if not dots.any():
        return fixed, stroke_offsets
    repeats = np.ones(len(fixed), np.int64)
    repeats[stroke_offsets[:-1][dots]] = 2
    new_offsets = np.zeros_like(stroke_offsets)
    np.cumsum(lengths + dots, out=new_offsets[1:])
    return np.repeat(fixed, repeats, axis=0), new_offsets


def _draw_temporal(
    hwc: np.ndarray,
    fixed: np.ndarray,
    batch: StrokeBatch,
    thickness: int,
    line_type: int,
    use_ms: bool = False,
) -> None:
    starts, ends, drawing, order, time = _temporal_segments(batch, use_ms)
    views = list(hwc)
    # Flat lists of ints, not nested lists: tens of thousands of live lists per batch would set
    # off full garbage collections, which tripled the time in a process holding many objects.
    xs, ys = fixed[:, 0].tolist(), fixed[:, 1].tolist()
    line = cv2.line
    for s, e, d, c1, c2 in zip(
        starts.tolist(),
        ends.tolist(),
        drawing.tolist(),
        order.tolist(),
        time.tolist(),
        strict=True,
    ):
        line(views[d], (xs[s], ys[s]), (xs[e], ys[e]), (255, c1, c2), thickness, line_type, SHIFT)


def _temporal_segments(batch: StrokeBatch, use_ms: bool = False) -> tuple[np.ndarray, ...]:
    """Segments in drawing order: start point, end point, drawing, stroke-order and time colours
    (time: point order, or with `use_ms` the recorded ms over the drawing's span).

    A one-point stroke becomes the zero-length segment (p, p), which OpenCV draws as a dot.
    """
    so, do = batch.stroke_offsets, batch.drawing_offsets
    n_points = len(batch.points)
    lengths = np.diff(so)
    last = np.zeros(n_points, bool)
    last[so[1:][lengths > 0] - 1] = True
    first = np.zeros(n_points, bool)
    first[so[:-1][lengths > 0]] = True
    starts = np.flatnonzero(~last | first)
    ends = starts + ~last[starts]

    point_stroke = batch.point_stroke[starts]
    point_drawing = batch.point_drawing[starts]
    stroke_in_drawing = point_stroke - do[point_drawing]
    n_strokes = np.maximum(batch.num_strokes - 1, 1)[point_drawing]
    drawing_start = so[do[:-1]][point_drawing]
    if use_ms:
        t = np.asarray(batch.times, np.float64)
        t_first = t[drawing_start]
        t_span = t[so[do[1:]][point_drawing] - 1] - t_first
        progress = ((t[starts] + t[ends]) / 2 - t_first) / np.maximum(t_span, 1e-9)
        progress = np.clip(progress, 0.0, 1.0)  # times out of order (bad clocks) stay on the ramp
    else:
        n_steps = np.maximum(batch.num_points - 1, 1)[point_drawing]
        progress = ((starts + ends) / 2 - drawing_start) / n_steps

    order = np.rint(_FIRST - (_FIRST - _LAST) * stroke_in_drawing / n_strokes).astype(np.int64)
    time = np.rint(_FIRST - (_FIRST - _LAST) * progress).astype(np.int64)
    return starts, ends, point_drawing, order, time
