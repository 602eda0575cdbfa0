"""One row's fields parsed and validated: key_id, recognized, and the drawing (simplified or raw,
with its times), shared by every reader, the converter, evaluate, predict and the demo.

A field that is not what Quick, Draw! writes raises [`BadRow`][quickdraw.data.formats.base.BadRow]
with a reason: the row is counted and skipped, never guessed at.
"""

from __future__ import annotations

import numpy as np
import orjson

from quickdraw.data.formats.base import INT64_MAX, BadRow, ParsedDrawing
from quickdraw.data.simplify import simplify_timed
from quickdraw.data.text import excerpt

# Raw drawings are resampled every pixel of the 255 px frame before RDP, whose time grows with that
# count (times the corners kept): a 5000-point zigzag across the frame is 1.3 M points and takes
# minutes. Real drawings hold a few thousand pixels of ink (the largest in Kaggle's sample ~31 000).
MAX_INK_PX = 65_536


def parse_key_id(value) -> int:
    # int() would accept True and truncate 2.5 to 2 (a duplicate id, perhaps); ndjson may hold either.
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise BadRow("bad_key_id", repr(value))
    try:
        k = int(value.strip()) if isinstance(value, str) else int(value)
    except (TypeError, ValueError, OverflowError, AttributeError):
        raise BadRow("bad_key_id", f"{str(value)[:40]!r} is not an integer") from None
    if not 0 <= k <= INT64_MAX:
        raise BadRow("bad_key_id", f"{k} outside 0..2^63-1")
    return k


def parse_recognized(value) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("true", "1"):
            return True
        if low in ("false", "0"):
            return False
    return None


def parse_drawing(
    value, drawing_format: str = "auto", max_points: int = 65_535
) -> tuple[np.ndarray, list[int]]:
    """Validate one drawing (JSON text or parsed lists) into uint8 (P, 2) points and stroke lengths
    ([`parse_timed_drawing`][quickdraw.data.parsing.parse_timed_drawing] without the times)."""
    return parse_timed_drawing(value, drawing_format, max_points)[:2]


def parse_timed_drawing(
    value, drawing_format: str = "auto", max_points: int = 65_535
) -> tuple[np.ndarray, list[int], np.ndarray | None]:
    """Validate one drawing into uint8 (P, 2) points, stroke lengths and (P,) float32 times.

    `drawing_format`: `simplified` wants integer 0-255 `[xs, ys]` strokes; `raw` simplifies any
    coordinates with Google's procedure; `auto` treats `[xs, ys, ts]` strokes as raw.
    Empty strokes are dropped; a drawing left with none is bad. A `ParsedDrawing` (binary and
    stroke-3 inputs, decoded and range-checked by their readers) is only checked for `max_points`.
    Times: ms since the drawing's first point, for raw drawings whose every stroke has `ts`
    (carried through the simplification, [`quickdraw.data.simplify.simplify_timed`][quickdraw.data.simplify.simplify_timed]); None
    otherwise. A `ts` list that is not one finite number per point is a bad row (`bad_times`).
    """
    if isinstance(value, ParsedDrawing):
        if len(value.points) > max_points:
            raise BadRow("too_many_points", f"more than {max_points} points")
        return value.points, value.lengths, None
    if isinstance(value, (str, bytes)):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as e:
            raise BadRow("bad_json", str(e)[:80]) from None
    if not isinstance(value, list):
        raise BadRow("bad_structure", "drawing is not a list of strokes")
    raw = drawing_format == "raw"
    xs: list = []
    ys: list = []
    ts: list | None = []
    lens: list[int] = []
    for i, stroke in enumerate(value):
        if (
            not isinstance(stroke, list)
            or len(stroke) not in (2, 3)
            or not isinstance(stroke[0], list)
            or not isinstance(stroke[1], list)
        ):
            raise BadRow("bad_structure", f"stroke {i} is not [xs, ys] or [xs, ys, ts]")
        if len(stroke) == 3:
            if drawing_format == "simplified":
                raise BadRow(
                    "bad_structure", f"stroke {i} has timestamps but drawing_format=simplified"
                )
            raw = True
        sx, sy = stroke[0], stroke[1]
        if len(sx) != len(sy):
            raise BadRow("length_mismatch", f"stroke {i} has {len(sx)} x and {len(sy)} y values")
        if len(stroke) == 2:
            ts = None
        elif ts is not None and (not isinstance(stroke[2], list) or len(stroke[2]) != len(sx)):
            raise BadRow("bad_times", f"stroke {i}: ts is not a list of {len(sx)} times")
        if sx:
            xs += sx
            ys += sy
            if ts is not None:
                ts += stroke[2]
            lens.append(len(sx))
            if len(xs) > max_points:
                raise BadRow("too_many_points", f"more than {max_points} points")
    if not lens:
        raise BadRow("empty_drawing")
    _check_numbers(xs, "coordinate", "bad_coordinates", ys)
    try:
        arr = np.array((xs, ys), dtype=np.float64).T
    except (ValueError, TypeError, OverflowError):
        raise BadRow("bad_structure", "a coordinate is not a number") from None
    if not np.isfinite(arr).all():
        raise BadRow("bad_coordinates", "NaN or infinite coordinate")
    if raw:
        # Simplification scales the extent to 255: it must be a finite float, and 255 / extent too.
        with np.errstate(over="ignore"):
            extent = float(np.ptp(arr, axis=0).max())
            steps = np.hypot(*np.diff(arr, axis=0).T)  # hypot: no overflow on huge coordinates
        if not np.isfinite(extent) or (extent > 0 and not np.isfinite(255.0 / extent)):
            raise BadRow(
                "bad_coordinates", f"coordinates span {extent:g}: cannot be scaled to 0..255"
            )
        steps[np.cumsum(lens)[:-1] - 1] = 0  # no ink between strokes
        ink = float(steps.sum()) * (255.0 / extent if extent > 0 else 1.0)
        if ink > MAX_INK_PX:
            raise BadRow(
                "too_many_points",
                f"{ink:,.0f} px of ink in the 255 px frame; the limit is {MAX_INK_PX:,}",
            )
        times = _times(ts)
        cuts = np.cumsum(lens)[:-1]
        strokes, kept = simplify_timed(
            np.split(arr, cuts), None if times is None else np.split(times, cuts)
        )
        if not any(len(s) for s in strokes):
            raise BadRow("empty_drawing", "nothing left after simplification")
        lengths = [len(s) for s in strokes if len(s)]
        if kept is None:
            return np.concatenate(strokes), lengths, None
        return np.concatenate(strokes), lengths, np.concatenate(kept).astype(np.float32)
    if arr.min() < 0 or arr.max() > 255:
        raise BadRow(
            "out_of_range", f"coordinates span {arr.min():g}..{arr.max():g}, expected 0..255"
        )
    ints = arr.astype(np.uint8)
    if (ints != arr).any():
        raise BadRow(
            "not_integer", "simplified coordinates must be integers (use drawing_format=raw)"
        )
    return ints, lens, None


# JSON numbers as the parsers give them (numpy scalars for lists built from arrays). `bool` is an
# `int` and numpy turns "12" into 12.0, so both would pass as numbers unless refused by type.
_NUMBERS = (int, float, np.integer, np.floating)
_PLAIN = frozenset((int, float))


def _check_numbers(values: list, what: str, reason: str, more: list = ()) -> None:
    """Raise `BadRow(reason)` naming the first value of `values` + `more` that is not a JSON
    number (`true`, `"12"`, `null`, a list...). Types are collected in C (`map`), so a
    1000-point drawing costs a set of one or two types, not a Python loop (~2 us a drawing)."""
    types = set(map(type, values))
    types.update(map(type, more))
    if types <= _PLAIN or all(
        issubclass(t, _NUMBERS) and not issubclass(t, (bool, np.bool_)) for t in types
    ):
        return
    values = [*values, *more]
    bad = next(v for v in values if not isinstance(v, _NUMBERS) or isinstance(v, (bool, np.bool_)))
    raise BadRow(reason, f"a {what} is {excerpt(_json_text(bad), 40)}, not a JSON number")


def _json_text(value) -> str:
    """`value` as JSON text, as the file wrote it (`true`, `"12"`); repr where it has none."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return repr(value)


def _times(ts: list | None) -> np.ndarray | None:
    """Raw `ts` values as float64 ms since the drawing's first point (None stays None)."""
    if ts is None:
        return None
    _check_numbers(ts, "time", "bad_times")
    try:
        times = np.array(ts, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        raise BadRow("bad_times", "a time is not a number") from None
    if times.ndim != 1 or not np.isfinite(times).all():
        raise BadRow("bad_times", "a time is not a finite number")
    return times - times[0]
