"""The README's figures, from the real sample: a drawings grid and the model comparison.

    python -m benchmarks.compare_models --budget 15 data.raster.size=32   # first: the runs compared
    python -m benchmarks.figures.readme [--compare outputs/compare] [--out docs/figures]

The drawings grid is the exploration notebook's own grid (`notebooks/01_data_exploration.ipynb`
run with `DATA = "sample"` by the tests' notebook runner, `tests/helpers/notebooks.py`); learning
curves, scores, quotas and confused pairs are `python -m quickdraw.report`'s figures for the
comparison runs. Needs the `tests` extra (nbclient) and `../shared/data/quickdraw-sample`.
"""

from __future__ import annotations

import argparse
import io
import logging
import shutil
import sys
import tempfile
from pathlib import Path

from PIL import Image

from benchmarks.common import ROOT, SAMPLE_DIR
from benchmarks.figures.plotting import FIGURES
from quickdraw.evaluation.report import write_report
from tests.helpers.notebooks import execute, section_images  # test tooling (the tests extra)

SAMPLE = SAMPLE_DIR / "train_simplified.zip"
REPORT_FIGURES = ("learning_curves", "scores", "quotas", "confused_pairs")


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--compare",
        type=Path,
        default=ROOT / "outputs" / "compare",
        help="folder of compare_models's runs (default: %(default)s)",
    )
    p.add_argument("--out", type=Path, default=FIGURES)
    p.add_argument(
        "--grid-classes", type=int, default=12, help="classes (rows) in the drawings grid"
    )
    p.add_argument("--grid-per-class", type=int, default=8, help="drawings per row")
    args = p.parse_args()
    if not SAMPLE.is_file():
        sys.exit(f"the real sample is not at {SAMPLE}")
    if not args.compare.is_dir():
        sys.exit(f"{args.compare} not found: run python -m benchmarks.compare_models first")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("tensorboard").setLevel(logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        nb = execute(
            ROOT / "notebooks" / "01_data_exploration.ipynb",
            {
                "DATA": "sample",
                "STATS_PER_CLASS": 20,
                "GRID_CLASSES": args.grid_classes,
                "GRID_PER_CLASS": args.grid_per_class,
                "SEED": 1,
            },
            Path(tmp),
        )
    grid = Image.open(io.BytesIO(section_images(nb, "What the drawings look like")[0]))
    grid.convert("L").save(args.out / "drawings.png", optimize=True)  # ink on white: gray is enough
    print(args.out / "drawings.png")
    report = write_report([args.compare], args.compare / "report")
    for name in REPORT_FIGURES:
        if (png := report.parent / f"{name}.png").is_file():
            shutil.copyfile(png, args.out / png.name)
            print(args.out / png.name)


if __name__ == "__main__":
    main()
