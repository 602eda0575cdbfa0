"""The notebooks live in git without outputs and run top to bottom on generated data (slow)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from quickdraw.notebook import execute, images

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def demo_parameters(base: Path) -> dict:
    """A small generated set and two smoke runs on it, shared with test_report through ``base``."""
    return {
        "data_dir": str(base / "data"),
        "overrides": [f"paths.data_dir={base / 'data'}", "data.synthetic_per_class=120"],
        "sweep": str(base / "report-demo"),
    }


def test_notebooks_are_committed_without_outputs():
    assert {p.name for p in NOTEBOOKS} >= {"01_data_exploration.ipynb", "02_results.ipynb"}
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        dirty = [
            i
            for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and (c.outputs or c.execution_count)
        ]
        assert not dirty, (
            f"{path.name}: cells {dirty} hold outputs; run `pre-commit run nbstripout --all-files`"
        )
        tags = [c.metadata.get("tags", []) for c in nb.cells if c.cell_type == "code"]
        assert "parameters" in tags[0], (
            f"{path.name}: the first code cell must be tagged parameters"
        )


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_data_exploration_notebook_runs(tmp_path_factory, tmp_path):
    demo = demo_parameters(tmp_path_factory.getbasetemp() / "demo")
    nb = execute(
        ROOT / "notebooks" / "01_data_exploration.ipynb",
        {"DATA_DIR": demo["data_dir"], "SYNTHETIC_PER_CLASS": 120, "STATS_PER_CLASS": 50},
        tmp_path,
    )
    # counts, strokes, per-class strokes, grid, encodings, augmentation, countries
    assert len(images(nb)) >= 7


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_results_notebook_runs(tmp_path_factory, tmp_path):
    demo = demo_parameters(tmp_path_factory.getbasetemp() / "demo")
    nb = execute(
        ROOT / "notebooks" / "02_results.ipynb",
        {"DEMO_DIR": demo["sweep"], "DEMO_OVERRIDES": demo["overrides"]},
        tmp_path,
    )
    # learning curves, scores, quotas, confused pairs
    assert len(images(nb)) >= 4
    assert (Path(demo["sweep"]) / "report" / "report.md").is_file()
