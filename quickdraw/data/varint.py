"""Zigzag varints in numpy, vectorised: the byte coding of the store's `times` column.

A signed integer `v` becomes `u = 2v` (`v >= 0`) or `-2v - 1` (zigzag: small magnitudes,
small codes), written 7 bits a byte, low bits first, the top bit set on every byte but a value's
last (Protocol Buffers' varint). Pen-timing deltas are mostly under 64 ms: one byte each.
"""

from __future__ import annotations

import numpy as np

_MAX_BYTES = 10  # 64 bits at 7 a byte


def encode(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,) int64 -> the uint8 bytes of all values and (N,) int64 bytes per value."""
    v = np.asarray(values, np.int64)
    u = (v.astype(np.uint64) << np.uint64(1)) ^ (v >> 63).astype(np.uint64)
    sizes = np.ones(len(u), np.int64)
    for k in range(1, _MAX_BYTES):
        sizes += u >= np.uint64(1 << (7 * k))
    owner = np.repeat(np.arange(len(u)), sizes)
    starts = np.cumsum(sizes) - sizes
    pos = np.arange(int(sizes.sum())) - starts[owner]
    low7 = (u[owner] >> (np.uint64(7) * pos.astype(np.uint64))) & np.uint64(0x7F)
    more = (pos < sizes[owner] - 1).astype(np.uint64) << np.uint64(7)
    return (low7 | more).astype(np.uint8), sizes


def decode(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 bytes -> (N,) int64 values and (len(data),) bool, True on each value's last byte.

    Raises ValueError when the bytes end inside a value."""
    b = np.asarray(data, np.uint8)
    last = b < 0x80
    if len(b) and not last[-1]:
        raise ValueError("varint bytes end inside a value")
    if not len(b):
        return np.zeros(0, np.int64), last
    starts = np.flatnonzero(np.concatenate([[True], last[:-1]]))
    owner = np.cumsum(np.concatenate([[0], last[:-1]]))
    pos = np.arange(len(b)) - starts[owner]
    if pos.max() >= _MAX_BYTES:
        raise ValueError("a varint longer than 10 bytes")
    parts = (b & 0x7F).astype(np.uint64) << (np.uint64(7) * pos.astype(np.uint64))
    u = np.bitwise_or.reduceat(parts, starts)
    return (u >> np.uint64(1)).astype(np.int64) ^ -(u & np.uint64(1)).astype(np.int64), last
