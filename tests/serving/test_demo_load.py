"""The demo under load: 20 clients x 25 guesses over plain HTTP, none failing; oversized input refused fast.

The server is the demo's own app (`build_app` + `launch` with `quickdraw/conf/demo.yaml`) on loopback.
Clients use Gradio's REST protocol as curl would: `POST /gradio_api/call/guess_strokes` for an
event id, then read its event stream. Latency does not depend on the weights, so the model is an
untrained ResNet18 at 32 px.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from quickdraw.data import synthetic
from quickdraw.serving.app import build_app, launch, load_guesser
from tests.helpers.checkpoints import save_untrained
from tests.helpers.commands import free_port
from tests.helpers.configs import RESNET, demo_config

pytestmark = pytest.mark.slow
CLIENTS, PER_CLIENT = 20, 25
NOT_SENT = "**Not sent to the model:**"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`python -m quickdraw.demo`'s app and settings, serving an untrained checkpoint."""
    ckpt = save_untrained(tmp_path_factory.mktemp("demo-load") / "model.ckpt", RESNET)
    cfg = demo_config(server_port=free_port(), ckpt_path=ckpt)
    guesser = load_guesser(cfg, ckpt)
    app = build_app(guesser)
    launch(app, cfg, prevent_thread_lock=True, quiet=True)
    try:
        yield app, cfg, set(guesser.classes)
    finally:
        app.close()


@pytest.fixture(scope="module")
def drawings(tmp_path_factory) -> list[str]:
    root = tmp_path_factory.mktemp("raw")
    out = []
    for word in synthetic.CLASSES[:5]:
        path = synthetic.write_raw_ndjson(root / f"{word}.ndjson", word, 5, seed=3)
        out += [json.dumps(json.loads(line)["drawing"]) for line in path.read_text().splitlines()]
    return out


def call(url: str, api: str, value) -> tuple[str, list | str, float]:
    """One request as plain HTTP: (event, data, seconds). Event is 'complete' or 'error'.

    A file (`Path`) goes through `gradio_client`, which uploads it first as the page does.
    """
    t0 = time.perf_counter()
    if isinstance(value, Path):
        from gradio_client import Client, handle_file

        try:
            out = Client(url, verbose=False).predict(handle_file(value), api_name=f"/{api}")
        except Exception as e:  # the client raises on an error event
            return "error", str(e), time.perf_counter() - t0
        return "complete", list(out), time.perf_counter() - t0
    body = json.dumps({"data": [value]}).encode()
    request = urllib.request.Request(
        f"{url}gradio_api/call/{api}", body, {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as r:
            event_id = json.loads(r.read())["event_id"]
    except urllib.error.HTTPError as e:  # 503 when the queue is full
        return f"http {e.code}", e.read().decode(), time.perf_counter() - t0
    event, data = "", ""
    with urllib.request.urlopen(f"{url}gradio_api/call/{api}/{event_id}", timeout=120) as r:
        for line in r:
            line = line.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event in ("complete", "error"):
                data = json.loads(line[6:])
                break
    return event, data, time.perf_counter() - t0


class QueueWatch(threading.Thread):
    """Polls `/gradio_api/queue/status` and keeps the largest queue seen."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.largest, self.stop = url, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            with urllib.request.urlopen(f"{self.url}gradio_api/queue/status", timeout=30) as r:
                self.largest = max(self.largest, json.loads(r.read())["queue_size"])
            time.sleep(0.05)


def load(url: str, drawings: list[str], clients: int, per_client: int) -> list[tuple]:
    def client(c: int) -> list[tuple]:
        return [call(url, "guess_strokes", drawings[(c + i) % len(drawings)]) for i in range(per_client)]  # fmt: skip

    with ThreadPoolExecutor(clients) as pool:
        return [r for rs in pool.map(client, range(clients)) for r in rs]


def p95(results: list[tuple]) -> float:
    return float(np.percentile([s for _, _, s in results], 95))


def test_the_server_listens_on_loopback_only_by_default(server):
    app, cfg, _ = server
    assert cfg.server_name == "127.0.0.1" and app.local_url.startswith("http://127.0.0.1:")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("10.255.255.255", 1))  # picks the outward interface; sends nothing
        outward = s.getsockname()[0]
    if outward.startswith("127."):
        pytest.skip("this machine has no non-loopback address to try")
    with pytest.raises(OSError), socket.create_connection((outward, cfg.server_port), timeout=2):
        pass


def test_many_concurrent_clients_all_get_answers_and_the_queue_stays_bounded(server, drawings):
    app, cfg, classes = server
    watch = QueueWatch(app.local_url)
    watch.start()
    t0 = time.perf_counter()
    results = load(app.local_url, drawings, CLIENTS, PER_CLIENT)
    seconds = time.perf_counter() - t0
    watch.stop.set()
    watch.join()
    failed = [
        (e, d) for e, d, _ in results if e != "complete" or not isinstance(d, list) or not d[0]
    ]
    assert len(results) == CLIENTS * PER_CLIENT and not failed, failed[:3]
    assert all(d[0]["label"] in classes for _, d, _ in results)
    assert watch.largest <= min(cfg.queue.max_size, CLIENTS), "queue grew beyond its bound"
    print(f"\n{len(results)} guesses in {seconds:.1f} s ({len(results) / seconds:.0f}/s), p95 {p95(results) * 1000:.0f} ms, largest queue {watch.largest}")  # fmt: skip


def oversized(tmp_path: Path) -> list[tuple[str, object, str]]:
    """Requests the demo must refuse, with a word its message must hold: (api, value, word)."""
    n = 300_000  # points: a few MB of JSON
    flood = json.dumps([[list(range(n)), list(range(n)), list(range(n))]])
    zigzag = json.dumps([[[0 if i % 2 else 1000 for i in range(4000)], list(range(4000)), list(range(4000))]])  # fmt: skip
    strokes = json.dumps([[[i, i + 1], [0, 1], [0, 1]] for i in range(1000)])
    photo = tmp_path / "50mp.png"
    cv2.imwrite(str(photo), np.full((5000, 10_000), 255, np.uint8))  # 50 megapixels of blank paper
    return [
        ("guess_strokes", flood, "too big"),
        ("guess_strokes", zigzag, "too big"),
        ("guess_strokes", strokes, "strokes"),
        ("guess_image", photo, "megapixels"),
    ]


def test_oversized_input_is_refused_politely_without_slowing_others(server, drawings, tmp_path):
    app, _, _ = server
    url = app.local_url
    baseline = load(url, drawings, 10, 5)
    bad = oversized(tmp_path)
    refusals: list[tuple] = []

    def attacker() -> None:
        for _ in range(3):
            for api, value, word in bad:
                refusals.append((word, *call(url, api, value)))

    attackers = [threading.Thread(target=attacker) for _ in range(2)]
    for t in attackers:
        t.start()
    during = load(url, drawings, 10, 5)
    for t in attackers:
        t.join()
    for word, event, data, seconds in refusals:
        assert event == "complete", (word, data)
        label, _, status = data
        assert not label and status.startswith(NOT_SENT) and word in status, status
        assert seconds < 10, f"refusing took {seconds:.1f} s"
    assert all(e == "complete" for e, _, _ in during)
    assert p95(during) < 3 * p95(baseline) + 1.0, (
        f"p95 {p95(baseline):.2f} s alone, {p95(during):.2f} s beside oversized requests"
    )


def test_a_50_megapixel_upload_is_refused_before_anything_decodes_it(server, tmp_path):
    """Gradio itself would decode a greyscale upload to convert it to RGB: ~1 s and ~200 MB at 50 MP."""
    from gradio_client import Client, handle_file

    app, _, _ = server
    small, big = tmp_path / "small.png", tmp_path / "50mp.png"
    cv2.imwrite(str(small), np.full((200, 300), 255, np.uint8))
    cv2.imwrite(str(big), np.full((5000, 10_000), 255, np.uint8))  # greyscale, 60 kB as PNG
    client = Client(app.local_url, verbose=False)

    def seconds(path: Path) -> float:
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            _, _, status = client.predict(handle_file(path), api_name="/guess_image")
            times.append(time.perf_counter() - t0)
        return min(times)

    assert seconds(big) < seconds(small) + 0.4, "the 50 MP image was decoded before being refused"


def test_a_full_queue_refuses_new_requests_instead_of_growing(tmp_path, drawings):
    ckpt = save_untrained(tmp_path / "model.ckpt", RESNET)
    cfg = demo_config(server_port=free_port(), ckpt_path=ckpt, **{"queue.max_size": 8})
    app = build_app(load_guesser(cfg, ckpt))
    launch(app, cfg, prevent_thread_lock=True, quiet=True)
    watch = QueueWatch(app.local_url)
    watch.start()
    try:
        with ThreadPoolExecutor(60) as pool:
            results = list(pool.map(lambda d: call(app.local_url, "guess_strokes", d), drawings * 3))  # fmt: skip
    finally:
        watch.stop.set()
        watch.join()
        app.close()
    answered = [r for r in results if r[0] == "complete"]
    refused = [r for r in results if r[0] != "complete"]
    assert answered and watch.largest <= 8
    assert all(e == "http 503" and "Queue is full" in d for e, d, _ in refused), refused[:2]
