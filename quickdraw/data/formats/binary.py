"""Google's binary Quick, Draw! files (`full/binary/<word>.bin`, also `.bin.gz`): a streaming reader.

The layout, from Google's Quick, Draw! data documentation ("Binary files"), is little-endian
records back to back, with no file header:

    key_id      uint64
    countrycode 2 ASCII bytes
    recognized  uint8 (0 or 1)
    timestamp   uint32, Unix seconds
    n_strokes   uint16
    n_strokes times:  n_points uint16, x uint8 * n_points, y uint8 * n_points

Coordinates are already simplified into the 0-255 frame. The class is the file name. The reader
walks the record headers in Python (one step per stroke) and gathers every point of a chunk
with one numpy fancy index, so it never loops per point.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import numpy as np

from quickdraw.data.formats.base import (
    BadRow,
    InputFile,
    ParsedDrawing,
    QuickDrawFormatError,
    Record,
    open_bytes,
)

HEADER = struct.Struct("<Q2sBIH")  # key_id, countrycode, recognized, timestamp, n_strokes
N_POINTS = struct.Struct("<H")
CHUNK = 4 << 20  # bytes read at a time; a record longer than this simply waits for more
# Countrycodes are two ISO 3166-1 letters; NULs are tolerated for "unknown". Anything else means
# the bytes are not this layout (or the reader lost its place in them).
COUNTRY_BYTES = bytes(range(ord("A"), ord("Z") + 1)) + bytes(range(ord("a"), ord("z") + 1)) + b"\0"


def iter_records(source: InputFile, max_bytes: int) -> Iterator[Record | BadRow]:
    """Yield `(record number, key_id, word, countrycode, recognized, timestamp, ParsedDrawing)`.

    Record numbers count from 1; bad rows name their byte offset in the (decompressed) file.
    A truncated last record is a `BadRow("truncated_record")`. A first record that does not fit
    the layout raises `QuickDrawFormatError` naming the file; a later one that does not ends the
    file with a `BadRow("bad_record")` (past it, record boundaries cannot be trusted).
    """
    with open_bytes(source, max_bytes) as f:
        if f.peek(2)[:2] == b"\x1f\x8b" and not source.gzipped:
            raise QuickDrawFormatError(
                f"{source.name}: gzip data in a file not named .gz; rename it to {source.filename}.gz"
            )
        buf, offset, number = b"", 0, 0
        while True:
            chunk = f.read(CHUNK)
            buf = buf + chunk if buf else chunk
            done, heads, strokes, problem = _walk(buf)
            if number == 0 and problem and not heads:
                raise QuickDrawFormatError(
                    f"{source.name}: not a Quick, Draw! binary file: the first record {problem}. "
                    "Expected Google's full/binary layout (python -m quickdraw.download --kind binary)"
                )
            yield from _records(source, buf, heads, strokes, offset, number)
            number += len(heads)
            if problem:
                yield BadRow(
                    "bad_record",
                    f"byte offset {offset + done}: record {problem}; the rest of the file is not "
                    "read (its record boundaries are lost); download the file again",
                    number + 1,
                )
                return
            buf, offset = buf[done:], offset + done
            if not chunk:
                break
    if buf and number == 0 and len(buf) < HEADER.size:
        raise QuickDrawFormatError(
            f"{source.name}: {len(buf)} bytes, shorter than one record header ({HEADER.size}); "
            "not a Quick, Draw! binary file"
        )
    if buf:
        yield BadRow(
            "truncated_record",
            f"byte offset {offset}: the last record is cut short ({len(buf)} bytes of it); "
            "the file is incomplete, download it again",
            number + 1,
        )


def _walk(buf: bytes) -> tuple[int, list[tuple], list[int], str | None]:
    """Complete records at the start of `buf`: (bytes they span, headers, stroke bounds, problem).

    `stroke bounds` is a flat `[x_start, n_points, ...]` list; `problem` says why the
    record after the complete ones is not this layout (None when it is merely incomplete).
    """
    heads: list[tuple] = []
    strokes: list[int] = []
    pos, end = 0, len(buf)
    while pos + HEADER.size <= end:
        key_id, country, recognized, timestamp, n_strokes = HEADER.unpack_from(buf, pos)
        if recognized > 1:
            return pos, heads, strokes, f"has recognized byte {recognized} (must be 0 or 1)"
        if country.translate(None, COUNTRY_BYTES):
            return pos, heads, strokes, f"has countrycode bytes {country!r} (must be letters)"
        mark, p = len(strokes), pos + HEADER.size
        for _ in range(n_strokes):
            if p + 2 > end:
                break
            n = N_POINTS.unpack_from(buf, p)[0]
            strokes += (p + 2, n)
            p += 2 + 2 * n
        else:
            if p <= end:
                heads.append((pos, key_id, country, recognized, timestamp, n_strokes))
                pos = p
                continue
        del strokes[mark:]  # incomplete: wait for more bytes
        break
    return pos, heads, strokes, None


def _records(
    source: InputFile, buf: bytes, heads: list[tuple], strokes: list[int], offset: int, number: int
) -> Iterator[Record | BadRow]:
    """Gather the points of every complete record in one go, then yield them one by one."""
    if not heads:
        return
    bounds = np.asarray(strokes, np.int64).reshape(-1, 2)
    starts, counts = bounds[:, 0], bounds[:, 1]
    first_point = np.cumsum(counts) - counts
    x_index = np.arange(int(counts.sum())) + np.repeat(starts - first_point, counts)
    data = np.frombuffer(buf, np.uint8)
    points = np.stack([data[x_index], data[x_index + np.repeat(counts, counts)]], axis=1)
    point_ends = np.concatenate([[0], np.cumsum(counts)]).tolist()
    counts = counts.tolist()
    times = np.array([h[4] for h in heads], "datetime64[s]").astype(str).tolist()
    s, word = 0, source.class_name
    for i, (pos, key_id, country, recognized, _, n_strokes) in enumerate(heads):
        lengths = [n for n in counts[s : s + n_strokes] if n]  # empty strokes carry nothing
        p0, p1 = point_ends[s], point_ends[s + n_strokes]
        s += n_strokes
        if not lengths:
            yield BadRow("empty_drawing", f"byte offset {offset + pos}", number + i + 1)
            continue
        yield (
            number + i + 1,
            key_id,
            word,
            country.rstrip(b"\0").decode("ascii") or None,
            bool(recognized),
            times[i],
            ParsedDrawing(points[p0:p1], lengths),
        )


def encode(
    key_id: int,
    strokes: list[np.ndarray],
    countrycode: str = "US",
    recognized: bool = True,
    timestamp: int = 1_488_000_000,
) -> bytes:
    """One record in the layout above from (N, 2) strokes of 0-255 integers (tests and benchmark)."""
    out = [HEADER.pack(key_id, countrycode.encode("ascii"), recognized, timestamp, len(strokes))]
    for stroke in strokes:
        stroke = np.asarray(stroke, np.uint8).reshape(-1, 2)
        out += [N_POINTS.pack(len(stroke)), stroke[:, 0].tobytes(), stroke[:, 1].tobytes()]
    return b"".join(out)
