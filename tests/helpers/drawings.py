"""Hand-made Quick, Draw! rows and files (Kaggle CSV, Google's raw ndjson), and the classes of the
generated sets the fixtures train on."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np

from quickdraw.data import synthetic

HEADER = ["countrycode", "drawing", "key_id", "recognized", "timestamp", "word"]
SQUARE = [[[10, 200, 200, 10, 10], [10, 10, 200, 200, 10]]]
LINE = [[[0, 255], [128, 128]]]

TINY_CLASSES = sorted(synthetic.CLASSES)[:4]  # the tiny store's (conftest's tiny_data_dir)
# Shapes a mouse can draw and that look nothing alike: the browser test draws two of them.
DEMO_CLASSES = ("circle", "square", "triangle", "zigzag")
GENERATED_PER_CLASS = 120  # the 15-class generated set, small: seconds to make


def kaggle_row(
    key_id,
    word,
    drawing=SQUARE,
    countrycode="US",
    recognized="True",
    timestamp="2017-03-11 14:47:44.05242",
):
    """One row of Kaggle's train_simplified layout (drawing given as lists, or as raw text)."""
    text = drawing if isinstance(drawing, str) else json.dumps(drawing)
    return [countrycode, text, str(key_id), recognized, timestamp, word]


def write_csv(path: Path, rows, header=HEADER) -> Path:
    """Write a Kaggle-layout CSV (gzip when the name ends in .gz)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", newline="") as f:
        w = csv.writer(f)
        if header:
            w.writerow(header)
        w.writerows(rows)
    return path


def squares_and_lines(
    folder: Path, rows: dict[str, int], key_base: int = 1000, suffix: str = ".csv.gz"
) -> Path:
    """One Kaggle CSV per word in `folder`, `rows[word]` rows of it alternating a line and a
    square; word `w` (in order) gets key_ids `key_base * (w + 1) + i`. Returns `folder`."""
    for w, (word, n) in enumerate(rows.items()):
        drawings = [
            kaggle_row(key_base * (w + 1) + i, word, SQUARE if i % 2 else LINE) for i in range(n)
        ]
        write_csv(folder / f"{word}{suffix}", drawings)
    return folder


def raw_ndjson(path, n: int = 12):
    """Google's raw ndjson layout: float screen coordinates and ms per point."""
    rng = np.random.default_rng(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for i in range(n):
            strokes, t = [], 0.0
            for _ in range(int(rng.integers(1, 4))):
                k = int(rng.integers(2, 30))
                xy = np.cumsum(rng.normal(0, 9, (k, 2)), axis=0) + 300.5
                ts = t + np.cumsum(rng.integers(5, 40, k)) - 5
                t = float(ts[-1]) + float(rng.integers(100, 1500))
                strokes.append([xy[:, 0].tolist(), xy[:, 1].tolist(), ts.tolist()])
            obj = {"word": "cat", "countrycode": "US", "timestamp": "2017-03-01 10:00:00.1 UTC",
                   "recognized": True, "key_id": str(10_000 + i), "drawing": strokes}  # fmt: skip
            f.write(json.dumps(obj) + "\n")
    return path


def sequence_edge_drawings(max_points: int) -> list[list]:
    """Raw drawings at the edges of the pen-move input (quickdraw.data.sequence): one point, one
    two-point stroke, one stroke of many corners and a drawing of many strokes, both far longer
    than `max_points` once simplified (kept: their first `max_points` points)."""
    corners = 2 * max_points + 7  # every corner survives the simplification (RDP epsilon 2)
    zigzag = [
        [float(10 * i) for i in range(corners)],
        [float(60 * (i % 2)) for i in range(corners)],
    ]
    dashes = [[[float(30 * i), float(30 * i + 20)], [float(15 * (i % 7)), 0.0]]
              for i in range(max_points)]  # fmt: skip
    return [[[[100.0], [100.0]]], [[[0.0, 250.0], [40.0, 40.0]]], [zigzag], dashes]
