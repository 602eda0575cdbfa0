"""The notebooks live in git without outputs and run top to bottom on generated data (slow)."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def demo_parameters(base: Path) -> dict:
    """A small generated set and two smoke runs on it, shared with test_report through ``base``."""
    return {
        "data_dir": str(base / "data"),
        "overrides": [f"paths.data_dir={base / 'data'}", "data.synthetic_per_class=120"],
        "sweep": str(base / "report-demo"),
    }


def execute(path: Path, parameters: dict, workdir: Path) -> nbformat.NotebookNode:
    """Run a notebook with ``parameters`` set in a cell after its ``parameters`` cell (papermill's convention)."""
    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    injected = "\n".join(f"{k} = {v!r}" for k, v in parameters.items())
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(injected))
    # A kernel spec for this very interpreter: a "python3" kernel installed elsewhere on the
    # machine could run another Python, without quickdraw.
    kernels = workdir / "kernels"
    shutil.rmtree(kernels, ignore_errors=True)
    write_kernel_spec(kernels / "quickdraw")
    specs = KernelSpecManager(kernel_dirs=[str(kernels)])
    km = KernelManager(kernel_name="quickdraw", kernel_spec_manager=specs)
    client = NotebookClient(nb, km=km, timeout=900, resources={"metadata": {"path": str(workdir)}})
    try:
        client.execute()
    finally:
        nbformat.write(nb, workdir / path.name)  # the executed copy, to look at when a cell fails
    return nb


def images(nb: nbformat.NotebookNode) -> int:
    return sum(
        "image/png" in out.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
    )


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
    assert images(nb) >= 7


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
    assert images(nb) >= 4
    assert (Path(demo["sweep"]) / "report" / "report.md").is_file()
