"""Google's other two Quick, Draw! layouts: binary ``.bin`` files and sketch-rnn's stroke-3 ``.npz``.

Their readers decode and range-check whole drawings themselves (numpy over buffers, not JSON), so
they hand the converter a ``ParsedDrawing`` that ``readers.parse_drawing`` passes through.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class ParsedDrawing(NamedTuple):
    """One drawing already in the store's frame, as a record's ``drawing`` field.

    ``points``: (P, 2) uint8, x and y in the 0-255 frame; ``lengths``: points per stroke, each >= 1,
    summing to P; ``split``: the file's own split (``train``, ``val`` or ``test``) where it has one,
    which ``settings.keep_source_split=true`` keeps instead of hashing key_id.
    """

    points: np.ndarray
    lengths: list[int]
    split: str | None = None
