"""Shared fixtures: tiny hand-made Quick, Draw! files, the real sample when present, CPU-only settings."""

from __future__ import annotations

import csv
import gzip
import json
import os
from pathlib import Path

import pytest

from quickdraw import configs

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


@pytest.fixture(autouse=True)
def _config_schemas():
    """Structured-config schemas (defaults that live in Python signatures) for every test that
    composes a config with Hydra's compose API: registered before each test, since some Hydra
    code paths (launchers) reset the ConfigStore; the commands register them themselves."""
    configs.register()

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "quickdraw-sample"
CASES = SAMPLE.parents[1] / "cases"  # small failing inputs users met (../shared/cases/README.md)
HEADER = ["countrycode", "drawing", "key_id", "recognized", "timestamp", "word"]
SQUARE = [[[10, 200, 200, 10, 10], [10, 10, 200, 200, 10]]]
LINE = [[[0, 255], [128, 128]]]


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


@pytest.fixture
def sample_dir() -> Path:
    if not (SAMPLE / "train_simplified.zip").is_file():
        pytest.skip(f"real Quick, Draw! sample not found at {SAMPLE}")
    return SAMPLE


@pytest.fixture
def cases() -> Path:
    """``../shared/cases``: the failing inputs the reliability guarantees are checked on."""
    if not (CASES / "README.md").is_file():
        pytest.skip(f"failing-input cases not found at {CASES}")
    return CASES
