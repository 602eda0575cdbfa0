"""The notebooks live in git without outputs and run top to bottom on generated data (slow)."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

from tests.conftest import GENERATED_PER_CLASS
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
def test_results_notebook_runs(smoke_sweep, tmp_path):
    shutil.rmtree(smoke_sweep / "report", ignore_errors=True)  # another test's report, if any
    nb = execute(ROOT / "notebooks" / "02_results.ipynb", {"RUNS": [str(smoke_sweep)]}, tmp_path)
    # learning curves, scores, quotas, confused pairs
    assert len(images(nb)) >= 4
    assert (smoke_sweep / "report" / "report.md").is_file()


@pytest.mark.slow
def test_results_notebook_without_runs_names_the_command_that_makes_some(tmp_path):
    with pytest.raises(CellExecutionError) as err:
        execute(ROOT / "notebooks" / "02_results.ipynb", {}, tmp_path)
    assert "RUNS is empty" in str(err.value)
    assert "python -m quickdraw.train -m experiment=smoke data.sampling=fixed,adaptive" in str(
        err.value
    )
