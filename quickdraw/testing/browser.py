"""An exported page in headless Chromium: the one harness of its tests, benchmarks and screenshot.

Serves the folder over loopback HTTP (as any static host would, and as `file://` could not:
browsers refuse ES modules and WASM from files), opens it in Debian's Chromium through
Playwright (`make browser`; no browser download), waits for the model, and counts every
request made after load. Needs the `tests` extra (playwright).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
# --enable-gpu-benchmarking: lets a page synthesise input through Chromium's own input pipeline
# (draw_synthetic); it changes nothing else a page sees.
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--enable-gpu-benchmarking"]  # fmt: skip

# Run before a page's scripts (open_page's init_script): the page as a browser without
# pointerrawupdate runs it (it is not in every major browser, nor on http pages but localhost).
WITHOUT_RAW_POINTER_EVENTS = "delete window.onpointerrawupdate;"
# True in the page once every guess asked for is shown (page.wait_for_function(IDLE)).
IDLE = "!window.quickdraw.state.busy && !window.quickdraw.state.waiting.length"

# Runs in the page: raw drawings -> the page's preprocessing and model, as plain arrays.
RUN_JS = """async (drawings) => {
  const qd = window.quickdraw, out = [];
  for (const d of drawings) {
    const {image, input} = qd.preprocess(d);  // image: what the page shows; input: the graph's
    const probs = await qd.classify(input);  // classify hands `input` to a worker
    out.push({image: Array.from(image), probs: Array.from(probs)});
  }
  return out;
}"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the tests count requests in the browser instead
        pass


@contextmanager
def serve(folder: str | Path) -> Iterator[str]:
    """`folder` on a free loopback port for the duration; yields its URL."""
    handler = functools.partial(_Quiet, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class PageSession:
    """A loaded page; `requests` lists every URL the page asked for after the model was ready."""

    def __init__(self, page) -> None:
        self.page = page
        self.requests: list[str] = []
        page.on("request", lambda r: self.requests.append(r.url))

    def run(self, drawings: list) -> list[dict]:
        """Raw drawings through the page: `image` (C*H*W uint8 values) and `probs` (K,) each."""
        return self.page.evaluate(RUN_JS, drawings)


@contextmanager
def open_page(
    folder: str | Path,
    viewport: tuple[int, int] = (1100, 760),
    init_script: str | None = None,
) -> Iterator[PageSession]:
    """Serve `folder` and open it in headless Chromium, ready to draw. Raises RuntimeError on page errors.

    `init_script`: JavaScript run before the page's own (the benchmarks use it to hide browser
    features, e.g. `pointerrawupdate`, and measure the page without them).
    """
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with serve(folder) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            page.on("pageerror", lambda e: errors.append(str(e)))
            if init_script:
                page.add_init_script(init_script)
            page.goto(url)
            try:
                page.wait_for_function("window.quickdraw && window.quickdraw.ready", timeout=60_000)
            except Exception as e:
                raise RuntimeError(f"the page at {url} did not get ready: {errors or e}") from e
            yield PageSession(page)
            if errors:
                raise RuntimeError(f"errors in the page: {errors}")
        finally:
            browser.close()


def draw(page, points: list[tuple[float, float]], steps: int = 3, pace_ms: float = 0.0) -> None:
    """One stroke with the mouse through `points` given as fractions of the canvas.

    `pace_ms`: start each move that long after the previous one (0: as fast as the driver goes).
    """
    box = page.locator("#sketchpad canvas").bounding_box()
    xy = [(box["x"] + u * box["width"], box["y"] + v * box["height"]) for u, v in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    due = time.perf_counter()
    for x, y in xy[1:]:
        due += pace_ms / 1000
        if (left := due - time.perf_counter()) > 0:
            time.sleep(left)
        page.mouse.move(x, y, steps=steps)
    page.mouse.up()


# Runs in the page: one mouse stroke as a pointer action sequence, one move a frame.
SYNTHETIC_JS = """async (points) => {
  const box = document.querySelector('#sketchpad canvas').getBoundingClientRect();
  const at = ([u, v]) => ({x: box.left + u * box.width, y: box.top + v * box.height});
  const actions = [{name: 'pointerDown', ...at(points[0])},
                   ...points.slice(1).map((p) => ({name: 'pointerMove', ...at(p)})), {name: 'pointerUp'}];
  const start = performance.now();
  await new Promise((done) => chrome.gpuBenchmarking.pointerActionSequence([{source: 'mouse', actions}], done));
  return performance.now() - start;
}"""


def draw_synthetic(page, points: list[tuple[float, float]]) -> float:
    """One mouse stroke through `points` (fractions of the canvas), made by Chromium itself.

    Chromium's synthetic pointer actions (`chrome.gpuBenchmarking.pointerActionSequence`, the
    input its own latency benchmarks use) enter the browser's input pipeline like a device's
    events, one move a displayed frame (60 Hz), with no round trip to this process per move: on a
    2-core machine [`draw`][quickdraw.testing.browser.draw]'s driver (Python, Playwright's Node process, the DevTools pipe)
    takes ~25 % of a core away from the page. Needs a browser from [`open_page`][quickdraw.testing.browser.open_page].
    Returns the stroke's duration in ms.
    """
    return page.evaluate(SYNTHETIC_JS, points)
