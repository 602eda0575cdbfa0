"""Demo latency: strokes -> probabilities on the server (p50/p95), and one request through the HTTP API.

    python scripts/bench_demo.py [--size 64] [--runs 300] [--models resnet18,ensemble_mean] [--no-server]
    python scripts/bench_demo.py --models resnet18 --big-image-only [--big-image-requests 3]

Models are built from ``quickdraw/conf/model/<name>.yaml`` for the 340 Quick, Draw! classes (untrained:
latency does not depend on the weights), saved as checkpoints and loaded the way the demo loads
them. Drawings are generated raw doodles (canvas pixels and ms, as the browser sends them).
Server-side figures run on one pinned CPU core with one torch thread; the end-to-end figure
starts ``python -m quickdraw.demo`` on another core and times ``gradio_client`` calls to it,
and the same request as plain REST (``/gradio_api/call/predict_strokes``, what curl would do).
Targets (one core): p95 <= 15 ms single model, <= 40 ms 3-member ensemble; a new guess within
100 ms of pen-up. Last, ``--clients`` concurrent REST clients x ``--per-client`` guesses load the
same server: throughput, latency, failed requests and the deepest queue seen. Then the worst
image request, one at a time over loopback: a ``--big-image`` square PNG (12,000: 144 MP in
55 kB) as a ``data:`` URL, with the server's CPU seconds and peak RSS growth for each.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from PIL import Image

import quickdraw  # noqa: F401
from quickdraw.core import config as configs
from quickdraw.data import synthetic
from quickdraw.models.module import QuickDrawModule
from quickdraw.serving.guesser import Predictor

ROOT = Path(__file__).resolve().parents[1]
CLASSES = (ROOT / "quickdraw" / "resources" / "categories.txt").read_text().split("\n")
CLASSES = [c for c in CLASSES if c][:340]
TARGET_P95_MS = {"resnet18": 15, "ensemble_mean": 40, "ensemble_head": 40}


def save_checkpoint(name: str, size: int, path: Path) -> Path:
    """quickdraw/conf/model/<name>.yaml as the training entry point builds it, saved without training."""
    configs.register()  # the structured-config schemas quickdraw/conf/ refers to, as the commands do
    with initialize_config_dir(config_dir=str(ROOT / "quickdraw/conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={name}"])
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    model_cfg.pop("_target_")
    model = QuickDrawModule(**model_cfg, classes=CLASSES, in_channels=1, raster={"size": size})
    state = {
        "state_dict": model.state_dict(),
        "hyper_parameters": dict(model.hparams),
        "pytorch-lightning_version": L.__version__,
    }
    torch.save(state, path)
    return path


def browser_drawings(n: int, root: Path) -> list[str]:
    """Raw generated doodles as the sketchpad sends them: JSON ``[[xs, ys, ts], ...]``."""
    words = synthetic.CLASSES
    out = []
    for word in words:
        path = synthetic.write_raw_ndjson(
            root / f"{word}.ndjson", word, -(-n // len(words)), seed=1
        )
        out += [json.dumps(json.loads(line)["drawing"]) for line in path.read_text().splitlines()]
    return out[:n]


def percentiles(ms: list[float]) -> tuple[float, float]:
    p50, p95 = np.percentile(ms, [50, 95])
    return float(p50), float(p95)


def time_server_side(
    predictor: Predictor, drawings: list[str], runs: int
) -> dict[str, list[float]]:
    """Wall and CPU ms of ``predict_strokes``, then its three steps timed one by one (wall)."""
    for d in drawings[:20]:  # warm-up: allocator, first-call paths
        predictor.predict_strokes(d)
    keys = ("wall", "cpu", "parse + simplify", "rasterise", "network")
    ms: dict[str, list[float]] = {k: [] for k in keys}
    for i in range(runs):
        d = drawings[i % len(drawings)]
        t0, c0 = time.perf_counter(), time.thread_time()
        predictor.predict_strokes(d)
        t1, c1 = time.perf_counter(), time.thread_time()
        batch = predictor.parse_strokes(d)
        t2 = time.perf_counter()
        images = predictor.spec(batch)
        t3 = time.perf_counter()
        predictor.probabilities(images)
        t4 = time.perf_counter()
        for key, dt in zip(keys, (t1 - t0, c1 - c0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            ms[key].append(dt * 1000)
    return ms


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rest_guess(http, drawing: str) -> bool:
    """One guess as plain REST (the page's "Use via API" curl recipe): submit, then read the event stream."""
    r = http.post("", json={"data": [drawing]})
    if r.status_code != 200:
        return False
    with http.stream("GET", f"/{r.json()['event_id']}") as answer:
        return any(line.startswith("event: complete") for line in answer.iter_lines())


def time_load(url: str, drawings: list[str], clients: int, per_client: int) -> dict[str, float]:
    """``clients`` concurrent REST clients x ``per_client`` guesses: guesses/s, latency, failures, deepest queue."""
    import httpx

    deepest, stop = [0], threading.Event()

    def watch() -> None:
        with httpx.Client(base_url=url) as h:
            while not stop.is_set():
                deepest[0] = max(deepest[0], h.get("gradio_api/queue/status").json()["queue_size"])
                time.sleep(0.05)

    def client(c: int) -> tuple[list[float], int]:
        ms, failed = [], 0
        with httpx.Client(base_url=url + "gradio_api/call/predict_strokes", timeout=120) as h:
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
    p50, p95 = np.percentile(ms, [50, 95])
    return {
        "per_s": len(ms) / wall,
        "p50": float(p50),
        "p95": float(p95),
        "failed": sum(f for _, f in results),
        "deepest_queue": deepest[0],
    }


@contextmanager
def running_demo(
    ckpt: Path, cpu: int | None, workdir: Path
) -> Iterator[tuple[str, subprocess.Popen]]:
    """``python -m quickdraw.demo`` serving ``ckpt`` on a free loopback port (core ``cpu``): its URL
    and process, stopped afterwards."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "quickdraw.demo",
        f"ckpt_path={ckpt}",
        f"server_port={port}",
        "threads=1",
        f"hydra.run.dir={workdir / 'demo'}",
    ]
    pin = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    log = open(workdir / "server.log", "w")  # noqa: SIM115  (closed after the server stops)
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, preexec_fn=pin)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(600):
            if server.poll() is not None:
                raise RuntimeError((workdir / "server.log").read_text()[-3000:])
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except OSError:
                time.sleep(0.5)
        yield url, server
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def time_http(
    ckpt: Path,
    drawings: list[str],
    runs: int,
    cpu: int | None,
    workdir: Path,
    load: tuple[int, int] = (0, 0),
) -> tuple[dict[str, list[float]], dict[str, float] | None]:
    """Start the real demo on core ``cpu``; time /predict_strokes through gradio_client and plain REST."""
    import httpx
    from gradio_client import Client

    with running_demo(ckpt, cpu, workdir) as (url, _):
        client = Client(url, verbose=False)

        def via_client(d: str) -> None:
            client.predict(d, api_name="/predict_strokes")

        http = httpx.Client(base_url=url + "gradio_api/call/predict_strokes")

        def via_rest(d: str) -> None:
            if not rest_guess(http, d):
                raise RuntimeError("a REST guess failed; see the server log")

        times: dict[str, list[float]] = {}
        for name, call in (("gradio_client", via_client), ("REST /gradio_api/call", via_rest)):
            for d in drawings[:10]:
                call(d)
            times[name] = []
            for i in range(runs):
                t0 = time.perf_counter()
                call(drawings[i % len(drawings)])
                times[name].append((time.perf_counter() - t0) * 1000)
        http.close()
        under_load = time_load(url, drawings, *load) if load[0] else None
        return times, under_load


def big_data_url(side: int) -> str:
    """A ``side`` x ``side`` blank bilevel PNG as a ``data:`` URL: 55 kB for 144 MP at 12,000."""
    png = io.BytesIO()
    Image.new("1", (side, side), 1).save(png, "PNG")
    return "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()


def time_big_images(
    ckpt: Path, cpu: int | None, workdir: Path, side: int, requests: int
) -> list[tuple[float, float, float, str]]:
    """``requests`` plain-HTTP calls of /predict_image, each a ``side``^2 PNG as a data URL, one at a time.

    Per request: (server CPU s, peak server RSS over its RSS before the request in MB, wall s, the
    page's status line). CPU is the demo process's user + system time; RSS is sampled every 5 ms.
    """
    import httpx
    import psutil

    body = {"data": [{"url": big_data_url(side), "meta": {"_type": "gradio.FileData"}}]}
    out = []
    with running_demo(ckpt, cpu, workdir) as (url, server), httpx.Client(timeout=300) as http:
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
            r = http.post(url + "gradio_api/call/predict_image", json=body)
            lines = http.get(url + f"gradio_api/call/predict_image/{r.json()['event_id']}").text
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

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if cpus:
        os.sched_setaffinity(0, {cpus[0]})  # one core, as the targets assume
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.big_image_only:
            name = args.models.split(",")[0]
            ckpt = save_checkpoint(name, args.size, work / f"{name}.ckpt")
            print_big_images(ckpt, cpus[-1] if cpus else None, work, args)
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
            predictor = Predictor.from_checkpoint(ckpts[name])
            ms = time_server_side(predictor, drawings, args.runs)
            (w50, w95), (c50, c95) = percentiles(ms.pop("wall")), percentiles(ms.pop("cpu"))
            parts = ", ".join(f"{k} {np.median(v):.2f}" for k, v in ms.items())
            label = f"{name} ({predictor.description.split(',')[0]})"
            target = TARGET_P95_MS.get(name, "-")
            print(f"{label:<30}{w50:>9.1f}{w95:>7.1f}{c50:>9.1f}{c95:>7.1f}{target:>12}   {parts}")
        if args.no_server:
            return
        name = next(iter(ckpts))
        if cpus:
            os.sched_setaffinity(0, set(cpus))  # the client runs beside the server, not on its core
        server_cpu = cpus[-1] if cpus else None
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
    """The worst image request: a PNG far over ``limits.max_image_pixels`` as a data URL."""
    if args.big_image_requests <= 0:
        return
    side = args.big_image
    url_kb = len(big_data_url(side)) / 1000
    print(
        f"oversized image: {args.big_image_requests} plain-HTTP /predict_image requests, each a "
        f"{side:,} x {side:,} PNG as a {url_kb:.0f} kB data URL, one at a time, server on 1 core"
    )
    for used, rss, wall, status in time_big_images(ckpt, cpu, work, side, args.big_image_requests):
        print(
            f"  server CPU {used:6.2f} s   peak RSS +{rss:5.0f} MB   wall {wall:5.2f} s   "
            f"page: {status[:90]}"
        )


if __name__ == "__main__":
    main()
