"""The static page that guesses in the browser: assets here, assembled by [`build_page`][quickdraw.deploy.web.build_page].

`format=web` writes an ONNX export (see [`quickdraw.deploy.onnx`][quickdraw.deploy.onnx]) and then this page beside
it: `index.html`, `app.js` (the loop), `worker.js` (onnxruntime-web in a Web Worker),
`raster.js` (the Python preprocessing in JavaScript, bit for bit), `sequence.js` (the pen moves
of stroke-sequence models, as [`quickdraw.data.sequence`][quickdraw.data.sequence] builds them), `history.js` (the demo's
guess history and announcement rule, [`quickdraw.serving.guessing`][quickdraw.serving.guessing], in JavaScript), the demo's
own sketchpad files, `page.json` (which model, how many guesses, the acceptance threshold, input
limits) and onnxruntime-web's WASM build copied from the npm package, so the folder runs from any
static host with no CDN and no request after load.
"""

from __future__ import annotations

import json
from pathlib import Path

from quickdraw.core.errors import MissingPathError, SettingError
from quickdraw.core.files import copy_atomic, write_json

ASSETS = Path(__file__).with_name("page")
STATIC = Path(__file__).parents[1] / "resources" / "sketchpad"
PAGE_FILES = (
    "index.html",
    "app.js",
    "worker.js",
    "raster.js",
    "sequence.js",
    "history.js",
    "page.css",
)
PAD_FILES = ("sketchpad.html", "sketchpad.js", "sketchpad.css")
# From the onnxruntime-web package's dist/: the WASM-only ES module bundle (its loader inlined)
# and the SIMD WASM binary it loads next to itself.
ORT_FILES = ("ort.wasm.bundle.min.mjs", "ort-wasm-simd-threaded.wasm")
WEB_DEPS = "make web-deps"


class WebBuildError(MissingPathError):
    """onnxruntime-web is not where the export looks for it; the message gives the command."""


def build_page(
    out_dir: str | Path,
    ort_dist: str | Path,
    model_file: str = "model.onnx",
    top_k: int = 5,
    max_points: int = 5000,
    max_strokes: int = 200,
    accept_threshold: float | None = 0.9,
) -> Path:
    """Write the page into `out_dir` (which already holds the export); returns `index.html`.

    `ort_dist`: the `dist` folder of the npm package onnxruntime-web (`make web-deps`
    installs it under `build/web-deps`). `accept_threshold`: the announcement's rule, as the
    demo's (null: never announce). Raises WebBuildError when it is missing, ValueError
    for a model the page cannot feed (antialiased rasters).
    """
    out, dist = Path(out_dir), Path(ort_dist)
    meta = json.loads((out / "model.json").read_text())
    if meta.get("raster", {}).get("antialias"):  # a sequence model's has none
        raise SettingError(
            "the page rasterises without antialiasing (OpenCV LINE_8 only); this model was "
            "trained with data.raster.antialias=true: export it with format=onnx instead"
        )
    if not (out / model_file).is_file():
        raise MissingPathError(f"{out / model_file}: not exported (web.model={model_file})")
    missing = [f for f in ORT_FILES if not (dist / f).is_file()]
    if missing:
        raise WebBuildError(
            f"onnxruntime-web not found: {dist} lacks {', '.join(missing)}. Install it with "
            f"`{WEB_DEPS}` in a checkout; from an installed package, `npm install --prefix DIR "
            "onnxruntime-web` and give web.ort_dist=DIR/node_modules/onnxruntime-web/dist"
        )
    package = json.loads((dist.parent / "package.json").read_text())
    page = {"model": model_file, "runtime": f"ort/{ORT_FILES[1]}", "top_k": top_k,
            "max_points": max_points, "max_strokes": max_strokes, "accept_threshold": accept_threshold,
            "onnxruntime_web": package.get("version")}  # fmt: skip
    # The page files come last (index.html is one of them), and a build that fails (a full disk)
    # removes what it wrote: a folder never looks like a page that cannot run.
    copies = [(dist / n, out / "ort" / n) for n in ORT_FILES]
    copies += [(STATIC / n, out / n) for n in PAD_FILES]
    copies += [(ASSETS / n, out / n) for n in reversed(PAGE_FILES)]  # index.html last
    written: list[Path] = []
    try:
        (out / "ort").mkdir(exist_ok=True)
        written.append(write_json(out / "page.json", page))
        for src, dst in copies:
            copy_atomic(src, dst)
            written.append(dst)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return out / "index.html"
