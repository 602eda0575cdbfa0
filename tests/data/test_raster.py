"""Behaviour of the shared rasteriser: geometry, encodings, edge cases, spec validation."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import zipfile
from itertools import islice

import numpy as np
import pytest

from quickdraw.data.raster import ENCODINGS, RasterSpec, rasterize, to_tensor
from quickdraw.data.strokes import StrokeBatch

HLINE = [[[0, 255], [128, 128]]]
TWO_STROKES = [[[10, 240], [40, 40]], [[10, 240], [200, 200]]]


def pack(*drawings) -> StrokeBatch:
    return StrokeBatch.from_drawings(drawings)


def ink_rows(img: np.ndarray) -> np.ndarray:
    return np.flatnonzero(img.any(axis=1))


def pixel(v: float, spec: RasterSpec) -> float:
    return spec.border + v * (spec.size - 1 - 2 * spec.border) / 255


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("size", [32, 64, 128])
def test_shape_dtype_channels(encoding: str, size: int) -> None:
    spec = RasterSpec(size=size, encoding=encoding)
    images = spec(pack(HLINE[0:1], TWO_STROKES))
    assert images.shape == (2, ENCODINGS[encoding], size, size) == (2, spec.channels, size, size)
    assert images.dtype == np.uint8 and images.flags.c_contiguous
    assert images.max() == 255
    tensor = to_tensor(images)
    assert tensor.dtype.is_floating_point is False and tensor.data_ptr() == images.ctypes.data


def test_out_is_filled_in_place_and_cleared() -> None:
    spec = RasterSpec()
    out = np.full((1, 1, 64, 64), 7, np.uint8)
    result = rasterize(pack(HLINE), spec, out=out)
    assert result is out
    np.testing.assert_array_equal(out, spec(pack(HLINE)))
    with pytest.raises(ValueError, match="shape"):
        rasterize(pack(HLINE), spec, out=np.zeros((1, 3, 64, 64), np.uint8))


def test_horizontal_line_lands_on_expected_row() -> None:
    spec = RasterSpec(line_width=1)
    img = spec(pack(HLINE))[0, 0]
    y = pixel(128, spec)
    assert ink_rows(img).tolist() == [round(y)]
    cols = np.flatnonzero(img[round(y)])
    assert cols.min() == round(pixel(0, spec)) and cols.max() == round(pixel(255, spec))


def test_aspect_ratio_is_preserved() -> None:
    # A 255 x 85 box must stay three times wider than tall, not be stretched to a square.
    box = [[[0, 255, 255, 0, 0], [0, 0, 85, 85, 0]]]
    img = RasterSpec(size=128, line_width=1, margin=0)(pack(box))[0, 0]
    rows, cols = ink_rows(img), np.flatnonzero(img.any(axis=0))
    width, height = cols.max() - cols.min(), rows.max() - rows.min()
    assert width == 127 and abs(width / height - 3) < 0.05


@pytest.mark.parametrize("spec", [RasterSpec(), RasterSpec(antialias=True), RasterSpec(size=128)])
def test_lines_on_the_frame_border_are_not_clipped(spec: RasterSpec) -> None:
    # A line along each border must leave as much ink as the same line moved a whole number of
    # pixels inwards (float points land exactly on pixel centres there).
    inward = 255 * 10 / (spec.size - 1 - 2 * spec.border)
    lines = {
        "top": ([0, 255], [0, 0]),
        "bottom": ([0, 255], [255, 255]),
        "left": ([0, 0], [0, 255]),
        "right": ([255, 255], [0, 255]),
    }
    for name, (xs, ys) in lines.items():
        sign = -1 if name in ("bottom", "right") else 1
        if name in ("top", "bottom"):
            moved = [xs, [y + sign * inward for y in ys]]
        else:
            moved = [[x + sign * inward for x in xs], ys]
        edge, inner = spec(pack([[xs, ys]], [moved]))[:, 0]
        assert edge.astype(int).sum() == inner.astype(int).sum(), name
    corners = spec(pack([[[0, 255, 255, 0, 0], [0, 0, 255, 255, 0]]]))[0, 0]
    # ...and the ink reaches the image border, so the margin is no wider than the line needs.
    assert corners[0].any() and corners[-1].any() and corners[:, 0].any() and corners[:, -1].any()


def test_explicit_margin_maps_frame_corners() -> None:
    spec = RasterSpec(size=32, line_width=1, margin=5)
    img = spec(pack([[[0], [0]], [[255], [255]]]))[0, 0]
    assert set(zip(*np.nonzero(img), strict=True)) == {(5, 5), (26, 26)}


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("antialias", [False, True])
def test_single_point_strokes_are_visible(encoding: str, antialias: bool) -> None:
    spec = RasterSpec(encoding=encoding, antialias=antialias)
    images = spec(pack([[[128], [128]]], [[[10], [10]], [[200, 250], [40, 40]]]))
    c = round(pixel(128, spec))
    assert images[0, :, c, c].min() > 0
    assert images[1, 0, round(pixel(10, spec)), round(pixel(10, spec))] > 0


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_empty_drawings_give_blank_images(encoding: str) -> None:
    spec = RasterSpec(encoding=encoding)
    images = spec(pack(HLINE, [], [[[], []]], HLINE))
    assert images[1:3].max() == 0 and images[0].max() == images[3].max() == 255
    assert spec(pack([], [])).max() == 0
    assert spec(pack()).shape == (0, spec.channels, 64, 64)


def test_line_width_scales_with_size() -> None:
    rows = {s: len(ink_rows(RasterSpec(size=s)(pack(HLINE))[0, 0])) for s in (32, 64, 128, 256)}
    assert rows[32] < rows[64] < rows[128] < rows[256]
    assert len(ink_rows(RasterSpec(size=128, line_width=1)(pack(HLINE))[0, 0])) == 1


def test_antialias_produces_intermediate_grey_levels() -> None:
    diagonal = [[[0, 255], [30, 200]]]
    sharp = RasterSpec()(pack(diagonal))
    smooth = RasterSpec(antialias=True)(pack(diagonal))
    assert set(np.unique(sharp)) == {0, 255}
    assert ((smooth > 0) & (smooth < 255)).sum() > 20


def test_temporal_stroke_order_channel_fades() -> None:
    img = RasterSpec(encoding="temporal")(pack(TWO_STROKES))[0]
    first, last = round(pixel(40, RasterSpec())), round(pixel(200, RasterSpec()))
    assert img[1, first].max() == 255
    assert 0 < img[1, last].max() < img[1, first].max() - 100


@pytest.mark.parametrize("xs", [[0, 255], [255, 0]])
def test_temporal_time_channel_follows_stroke_direction(xs: list[int]) -> None:
    spec = RasterSpec(encoding="temporal", line_width=1)
    img = spec(pack([[[xs[0], 128, xs[1]], [128, 128, 128]], [[100, 150], [200, 200]]]))[0]
    row = img[2, round(pixel(128, spec))]
    values = row[row > 0] if xs[0] == 0 else row[row > 0][::-1]
    # Bright where the pen started, darker where it went next, later strokes darker still.
    assert values[0] > values[-1] and np.all(np.diff(values.astype(int)) <= 0)
    assert img[2, round(pixel(200, spec))].max() < values.min()


def test_temporal_ink_channel_matches_gray() -> None:
    batch = pack(TWO_STROKES, HLINE, [[[128], [128]]])
    gray = RasterSpec()(batch)[:, 0]
    np.testing.assert_array_equal(RasterSpec(encoding="temporal")(batch)[:, 0], gray)


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_float_and_uint8_points_give_the_same_image(encoding: str) -> None:
    batch = pack(TWO_STROKES, HLINE, [[[0, 255, 255, 0], [0, 0, 255, 255]]])
    as_uint8 = StrokeBatch(
        batch.points.astype(np.uint8), batch.stroke_offsets, batch.drawing_offsets
    )
    for spec in (
        RasterSpec(encoding=encoding),
        RasterSpec(size=128, encoding=encoding, antialias=True),
    ):
        np.testing.assert_array_equal(spec(batch), spec(as_uint8))


def test_points_outside_the_frame_are_clipped_not_fatal() -> None:
    img = RasterSpec()(pack([[[-500, 128, 1e6], [128, 128, -1e7]]]))[0, 0]
    assert img[round(pixel(128, RasterSpec()))].any()


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_batch_equals_single_drawings(encoding: str, sample_drawings: list) -> None:
    spec = RasterSpec(encoding=encoding)
    batch = pack(*sample_drawings[:40])
    images = spec(batch)
    assert (images.reshape(len(batch), -1).max(axis=1) == 255).all()
    for i in range(0, len(batch), 7):
        np.testing.assert_array_equal(images[i : i + 1], spec(batch.select(np.array([i]))))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"encoding": "rgb"}, "gray"),
        ({"size": 4}, "size"),
        ({"line_width": 0}, "line_width"),
        ({"margin": 40}, "margin"),
    ],
)
def test_invalid_spec_is_rejected(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RasterSpec(**kwargs)


def test_spec_round_trips_through_plain_dict() -> None:
    spec = RasterSpec(size=96, encoding="temporal", line_width=2.5, antialias=True, margin=3.0)
    assert RasterSpec(**dataclasses.asdict(spec)) == spec
    assert spec.thickness == 2 and RasterSpec(size=128).thickness == 4


@pytest.fixture(scope="module")
def sample_drawings(sample_dir) -> list:
    """Real drawings from the shared sample, or a skip when it is absent."""
    drawings = []
    with zipfile.ZipFile(sample_dir / "train_simplified.zip") as zf:
        for name in zf.namelist()[:4]:
            with zf.open(name) as f:
                rows = csv.DictReader(io.TextIOWrapper(f, encoding="utf-8"))
                drawings += [json.loads(row["drawing"]) for row in islice(rows, 10)]
    return drawings
