"""What the figure scripts share: where figures go, metric names, the canvas, saving, reading the
comparison runs they plot, and the house the screenshots draw."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from benchmarks.common import ROOT
from quickdraw.core.files import write_figure

FIGURES = ROOT / "docs" / "figures"  # the README's and the docs' figures
LABELS = {"test/map3": "MAP@3", "test/acc": "top-1"}
# A house in three strokes (walls, roof, door) as fractions of the canvas, in drawing order.
HOUSE = [
    [(0.25, 0.45), (0.25, 0.85), (0.75, 0.85), (0.75, 0.45), (0.25, 0.45)],
    [(0.2, 0.47), (0.5, 0.15), (0.8, 0.47)],
    [(0.45, 0.85), (0.45, 0.65), (0.56, 0.65), (0.56, 0.85)],
]


def canvas(width: float, height: float) -> tuple[Figure, Axes]:
    """A figure of one axes. `Figure` rather than pyplot: no window, no global state."""
    fig = Figure(figsize=(width, height))
    return fig, fig.add_subplot()


def finish(fig: Figure, ax: Axes, title: str, grid: str = "both") -> Figure:
    """The house style: a light `grid` ("x", "y" or "both"), a small title, tight margins."""
    ax.grid(axis=grid, alpha=0.3)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def parser(doc: str, out: str) -> argparse.ArgumentParser:
    """A figure script's command line: its docstring as help, `--out` (default `FIGURES/out`)."""
    p = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", type=Path, default=FIGURES / out, help="the PNG (default: %(default)s)")
    return p


def save(fig: Figure, out: Path) -> Path:
    """`fig` as a PNG at `out` (folders made), and a line saying so."""
    out.parent.mkdir(parents=True, exist_ok=True)
    write_figure(fig, out)  # 110 dpi
    print(f"written: {out}")
    return out


def comparison(folder: Path, name: str, option: str) -> dict:
    """`folder/name`, a JSON file `python -m benchmarks.compare_models option` wrote; exits
    with the command that writes it when it is missing."""
    path = folder / name
    if not path.is_file():
        sys.exit(
            f"{path} not found: run python -m benchmarks.compare_models {option} --out {folder} first"
        )
    return json.loads(path.read_text())
