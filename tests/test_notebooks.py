"""The notebooks live in git without outputs and run top to bottom on generated data (slow)."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from tests.helpers.drawings import GENERATED_PER_CLASS
from tests.helpers.notebooks import execute, images

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


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
def test_data_exploration_notebook_runs(generated_data_dir, tmp_path):
    nb = execute(
        ROOT / "notebooks" / "01_data_exploration.ipynb",
        {"DATA_DIR": str(generated_data_dir), "SYNTHETIC_PER_CLASS": GENERATED_PER_CLASS,
         "STATS_PER_CLASS": 50},
        tmp_path,
    )  # fmt: skip
    # counts, strokes, per-class strokes, grid, encodings, augmentation, countries
    assert len(images(nb)) >= 7


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_results_notebook_without_runs_takes_the_latest_finished_runs(smoke_sweep, tmp_path):
    shutil.rmtree(smoke_sweep / "report", ignore_errors=True)  # another test's report, if any
    nb = execute(ROOT / "notebooks" / "02_results.ipynb", {"OUTPUTS": str(smoke_sweep)}, tmp_path)
    said = printed(nb)
    assert f"RUNS is empty: the 2 latest finished training runs under {smoke_sweep}" in said
    assert f"  {smoke_sweep / '0'}\n  {smoke_sweep / '1'}\n" in said  # which, oldest first
    # learning curves, scores, quotas, confused pairs
    assert len(images(nb)) >= 4
    assert (smoke_sweep / "report" / "report.md").is_file()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_results_notebook_with_runs_given_and_none_found(smoke_sweep, tmp_path):
    given = execute(
        ROOT / "notebooks" / "02_results.ipynb",
        {"RUNS": [str(smoke_sweep / "1")], "WRITE_REPORT": False},
        tmp_path / "given",
    )
    assert "RUNS is empty" not in printed(given)
    assert "smoke · adaptive" in printed(given) and "smoke · fixed" not in printed(given)  # run 1
    assert len(images(given)) >= 4
    # Nothing under outputs: no error, and the way to make two runs to compare.
    none = execute(
        ROOT / "notebooks" / "02_results.ipynb", {"OUTPUTS": str(tmp_path)}, tmp_path / "none"
    )
    assert "RUNS is empty: the 0 latest finished training runs" in printed(none)
    assert "python -m quickdraw.train -m experiment=smoke data.sampling=fixed,adaptive" in printed(
        none
    )
    assert not images(none)


def printed(nb) -> str:
    """Everything the notebook's code cells printed or showed as text."""
    return "\n".join(
        out.get("text", "") + out.get("data", {}).get("text/plain", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
    )
