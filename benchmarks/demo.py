"""Demo latency: strokes -> probabilities on the server (p50/p95), and one request through the HTTP API.

    python -m benchmarks.demo [--size 64] [--runs 300] [--models resnet18,ensemble_mean] [--no-server]
    python -m benchmarks.demo --models resnet18 --big-image-only [--big-image-requests 3]

Models are built from `quickdraw/conf/model/<name>.yaml` for the 340 Quick, Draw! classes (untrained:
latency does not depend on the weights), saved as checkpoints and loaded the way the demo loads
them. Drawings are generated raw doodles (canvas pixels and ms, as the browser sends them).
Server-side figures run on one pinned CPU core with one torch thread; the end-to-end figure
starts `python -m quickdraw.demo` on another core and times `gradio_client` calls to it,
and the same request as plain REST (`/gradio_api/call/guess_strokes`, what curl would do).
Targets (one core): p95 <= 15 ms single model, <= 40 ms 3-member ensemble; a new guess within
100 ms of pen-up. Last, `--clients` concurrent REST clients x `--per-client` guesses load the
same server: throughput, latency, failed requests and the deepest queue seen. Then the worst
image request, one at a time over loopback: a `--big-image` square PNG (12,000: 144 MP in
55 kB) as a `data:` URL, with the server's CPU seconds and peak RSS growth for each.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.common import (
    CLASSES,
    browser_drawings,
    percentiles,
    pin_one_core,
    running_demo,
    save_checkpoint,
    timed_ms,
    usable_cpus,
)
from quickdraw.serving.guesser import Guesser

TARGET_P95_MS = {"resnet18": 15, "ensemble_mean": 40, "ensemble_head": 40}


def time_server_side(guesser: Guesser, drawings: list[str], runs: int) -> dict[str, list[float]]:
    """Wall and CPU ms of `guess_strokes`, then its three steps timed one by one (wall)."""
    for d in drawings[:20]:  # warm-up: allocator, first-call paths
        guesser.guess_strokes(d)
    keys = ("wall", "cpu", "parse + simplify", "rasterise", "network")
    ms: dict[str, list[float]] = {k: [] for k in keys}
    for i in range(runs):
        d = drawings[i % len(drawings)]
        t0, c0 = time.perf_counter(), time.thread_time()
        guesser.guess_strokes(d)
        t1, c1 = time.perf_counter(), time.thread_time()
        batch = guesser.parse_strokes(d)
        t2 = time.perf_counter()
        images = guesser.spec(batch)
        t3 = time.perf_counter()
        guesser.probabilities(images)
        t4 = time.perf_counter()
        for key, dt in zip(keys, (t1 - t0, c1 - c0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            ms[key].append(dt * 1000)
    return ms


def rest_guess(http, drawing: str) -> bool:
    """One guess as plain REST (the page's "Use via API" curl recipe): submit, then read the event stream."""
    r = http.post("", json={"data": [drawing]})
    if r.status_code != 200:
        return False
    with http.stream("GET", f"/{r.json()['event_id']}") as answer:
        return any(line.startswith("event: complete") for line in answer.iter_lines())


def time_load(url: str, drawings: list[str], clients: int, per_client: int) -> dict[str, float]:
    """`clients` concurrent REST clients x `per_client` guesses: guesses/s, latency, failures, deepest queue."""
    import httpx

    deepest, stop = [0], threading.Event()

    def watch() -> None:
        with httpx.Client(base_url=url) as h:
            while not stop.is_set():
                deepest[0] = max(deepest[0], h.get("gradio_api/queue/status").json()["queue_size"])
                time.sleep(0.05)

    def client(c: int) -> tuple[list[float], int]:
        ms, failed = [], 0
        with httpx.Client(base_url=url + "gradio_api/call/guess_strokes", timeout=120) as h:
            for i in range(per_client):
                t0 = time.perf_counter()
                try:
                    failed += not rest_guess(h, drawings[(c * per_client + i) % len(drawings)])
                except httpx.HTTPError:
                    failed += 1
                ms.append((time.perf_counter() - t0) * 1000)
        return ms, failed

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(client, range(clients)))
    wall = time.perf_counter() - t0
    stop.set()
    watcher.join()
    ms = [m for r, _ in results for m in r]
    p50, p95 = percentiles(ms)
    return {
        "per_s": len(ms) / wall,
        "p50": p50,
        "p95": p95,
        "failed": sum(f for _, f in results),
        "deepest_queue": deepest[0],
    }


def time_http(
    ckpt: Path,
    drawings: list[str],
    runs: int,
    cpu: int | None,
    workdir: Path,
    load: tuple[int, int] = (0, 0),
) -> tuple[dict[str, list[float]], dict[str, float] | None]:
    """Start the real demo on core `cpu`; time /guess_strokes through gradio_client and plain REST."""
    import httpx
    from gradio_client import Client

    with running_demo(workdir, f"ckpt_path={ckpt}", "threads=1", cpu=cpu) as (url, _):
        client = Client(url, verbose=False)

        def via_client(d: str) -> None:
            client.predict(d, api_name="/guess_strokes")

        http = httpx.Client(base_url=url + "gradio_api/call/guess_strokes")

        def via_rest(d: str) -> None:
            if not rest_guess(http, d):
                raise RuntimeError("a REST guess failed; see the server log")

        times = {
            name: timed_ms(lambda i, call=call: call(drawings[i % len(drawings)]), runs, warmup=10)
            for name, call in (("gradio_client", via_client), ("REST /gradio_api/call", via_rest))
        }
        http.close()
        under_load = time_load(url, drawings, *load) if load[0] else None
        return times, under_load


def big_data_url(side: int) -> str:
    """A `side` x `side` blank bilevel PNG as a `data:` URL: 55 kB for 144 MP at 12,000."""
    png = io.BytesIO()
    Image.new("1", (side, side), 1).save(png, "PNG")
    return "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()


def time_big_images(
    ckpt: Path, cpu: int | None, workdir: Path, side: int, requests: int
) -> list[tuple[float, float, float, str]]:
    """`requests` plain-HTTP calls of /guess_image, each a `side`^2 PNG as a data URL, one at a time.

    Per request: (server CPU s, peak server RSS over its RSS before the request in MB, wall s, the
    page's status line). CPU is the demo process's user + system time; RSS is sampled every 5 ms.
    """
    import httpx
    import psutil

    body = {"data": [{"url": big_data_url(side), "meta": {"_type": "gradio.FileData"}}]}
    out = []
    demo = running_demo(workdir, f"ckpt_path={ckpt}", "threads=1", cpu=cpu)
    with demo as (url, server), httpx.Client(timeout=300) as http:
        proc = psutil.Process(server.pid)
        for _ in range(requests):
            peak, stop = [proc.memory_info().rss], threading.Event()

            def sample(peak: list[int] = peak, stop: threading.Event = stop) -> None:
                while not stop.is_set():
                    peak.append(proc.memory_info().rss)
                    time.sleep(0.005)

            sampler = threading.Thread(target=sample, daemon=True)
            cpu0, t0 = proc.cpu_times(), time.perf_counter()
            sampler.start()
            r = http.post(url + "gradio_api/call/guess_image", json=body)
            lines = http.get(url + f"gradio_api/call/guess_image/{r.json()['event_id']}").text
            wall, cpu1 = time.perf_counter() - t0, proc.cpu_times()
            stop.set()
            sampler.join()
            data = [json.loads(x[6:]) for x in lines.splitlines() if x.startswith("data: ")]
            status = data[-1][2] if data and isinstance(data[-1], list) else str(data[-1:])
            used = cpu1.user + cpu1.system - cpu0.user - cpu0.system
            out.append((used, (max(peak) - peak[0]) / 2**20, wall, status))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="input side in px (default 64)")
    parser.add_argument("--runs", type=int, default=300, help="timed predictions per model")
    parser.add_argument(
        "--models", default="resnet18,ensemble_mean", help="quickdraw/conf/model names"
    )
    parser.add_argument("--http-runs", type=int, default=100, help="timed HTTP requests")
    parser.add_argument("--no-server", action="store_true", help="skip the end-to-end HTTP figures")
    parser.add_argument(
        "--clients", type=int, default=20, help="concurrent clients in the load test"
    )
    parser.add_argument(
        "--per-client", type=int, default=25, help="guesses per client in the load test"
    )
    parser.add_argument(
        "--big-image", type=int, default=12_000, help="side of the oversized data-URL PNG"
    )
    parser.add_argument(
        "--big-image-requests", type=int, default=3, help="oversized requests sent (0: none)"
    )
    parser.add_argument(
        "--big-image-only", action="store_true", help="only the oversized-image figures"
    )
    args = parser.parse_args()

    cpus = usable_cpus()
    server_cpu = cpus[-1] if cpus else None  # the end-to-end figures' server
    pin_one_core()  # one core, as the targets assume
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.big_image_only:
            name = args.models.split(",")[0]
            ckpt = save_checkpoint(name, args.size, work / f"{name}.ckpt")
            print_big_images(ckpt, server_cpu, work, args)
            return
        drawings = browser_drawings(200, work)
        n_points = [sum(len(s[0]) for s in json.loads(d)) for d in drawings]
        print(
            f"server side, strokes -> probabilities: {len(CLASSES)} classes, {args.size} px, 1 thread "
            f"on 1 core, {args.runs} runs over {len(drawings)} drawings "
            f"({int(np.median(n_points))} raw points median)"
        )
        print(
            "wall: elapsed time; cpu: CPU time of the serving thread (= wall on a core of its own)"
        )
        print(
            f"{'model':<30}{'wall p50':>9}{'p95':>7}{'cpu p50':>9}{'p95':>7}{'target p95':>12}"
            "   wall p50 of the parts, ms"
        )
        ckpts = {}
        for name in args.models.split(","):
            ckpts[name] = save_checkpoint(name, args.size, work / f"{name}.ckpt")
            guesser = Guesser.from_checkpoint(ckpts[name])
            ms = time_server_side(guesser, drawings, args.runs)
            (w50, w95), (c50, c95) = percentiles(ms.pop("wall")), percentiles(ms.pop("cpu"))
            parts = ", ".join(f"{k} {np.median(v):.2f}" for k, v in ms.items())
            label = f"{name} ({guesser.description.split(',')[0]})"
            target = TARGET_P95_MS.get(name, "-")
            print(f"{label:<30}{w50:>9.1f}{w95:>7.1f}{c50:>9.1f}{c95:>7.1f}{target:>12}   {parts}")
        if args.no_server:
            return
        name = next(iter(ckpts))
        if cpus:
            os.sched_setaffinity(0, set(cpus))  # the client runs beside the server, not on its core
        times, load = time_http(
            ckpts[name], drawings, args.http_runs, server_cpu, work, (args.clients, args.per_client)
        )
        print(
            f"end to end, one request through the running server ({name}, server on 1 core; "
            "target: a new guess < 100 ms after pen-up)"
        )
        for how, ms in times.items():
            p50, p95 = percentiles(ms)
            print(f"  {how:<26}p50 {p50:6.1f} ms   p95 {p95:6.1f} ms")
        print(
            "  (gradio_client polls for results every 50 ms, which sets its floor; browsers get "
            "results pushed over server-sent events)"
        )
        if load:
            print(
                f"under load: {args.clients} concurrent REST clients x {args.per_client} guesses, "
                f"server on 1 core: {load['per_s']:.0f} guesses/s, p50 {load['p50']:.0f} ms, "
                f"p95 {load['p95']:.0f} ms, {load['failed']} failed, deepest queue "
                f"{load['deepest_queue']}"
            )
        print_big_images(ckpts[name], server_cpu, work, args)


def print_big_images(ckpt: Path, cpu: int | None, work: Path, args: argparse.Namespace) -> None:
    """The worst image request: a PNG far over `limits.max_image_pixels` as a data URL."""
    if args.big_image_requests <= 0:
        return
    side = args.big_image
    url_kb = len(big_data_url(side)) / 1000
    print(
        f"oversized image: {args.big_image_requests} plain-HTTP /guess_image requests, each a "
        f"{side:,} x {side:,} PNG as a {url_kb:.0f} kB data URL, one at a time, server on 1 core"
    )
    for used, rss, wall, status in time_big_images(ckpt, cpu, work, side, args.big_image_requests):
        print(
            f"  server CPU {used:6.2f} s   peak RSS +{rss:5.0f} MB   wall {wall:5.2f} s   "
            f"page: {status[:90]}"
        )


if __name__ == "__main__":
    main()
