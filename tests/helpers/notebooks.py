"""Run a project notebook unattended with parameters, and pull figures out of the result.

Used by the tests (every notebook runs top to bottom in CI, so none rots) and by
`python -m benchmarks.figures.readme` (the README's drawings grid is the exploration notebook's own grid,
run on the real sample). Test tooling, not part of the package: it lives in `tests/` and needs
the `tests` extra (nbclient, nbformat, ipykernel).
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path


def execute(path: Path, parameters: dict, workdir: Path, timeout: int = 900):
    """Run the notebook at `path` with `parameters` set in a cell inserted after the cell
    tagged `parameters` (papermill's convention); the executed copy is written to `workdir`
    even when a cell fails, to look at."""
    import nbformat
    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    workdir.mkdir(parents=True, exist_ok=True)
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
    client = NotebookClient(
        nb, km=km, timeout=timeout, resources={"metadata": {"path": str(workdir)}}
    )
    try:
        client.execute()
    finally:
        nbformat.write(nb, workdir / Path(path).name)
    return nb


def images(nb, cells=None) -> list[bytes]:
    """Every PNG output by the notebook's code cells (or by `cells` only), in order."""
    return [
        base64.b64decode(out["data"]["image/png"])
        for cell in (nb.cells if cells is None else cells)
        if cell.cell_type == "code"
        for out in cell.outputs
        if "image/png" in out.get("data", {})
    ]


def section_images(nb, heading: str) -> list[bytes]:
    """The PNGs output under the Markdown heading (any level) whose text starts with `heading`."""
    cells, inside = [], False
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.startswith("#"):
            inside = cell.source.splitlines()[0].lstrip("#").strip().startswith(heading)
        elif inside:
            cells.append(cell)
    if not (found := images(nb, cells)):
        raise LookupError(f"no figure under a heading starting with {heading!r}")
    return found
