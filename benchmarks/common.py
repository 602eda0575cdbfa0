"""What the benchmarks share: timing and percentiles, one pinned core, the machine, a running demo,
an untrained checkpoint, generated drawings and stores made by the library.

Kept here so that each benchmark reads top to bottom as what it measures; everything that builds
data or models calls the library (`quickdraw.data.sources`, the Hydra configs in
`quickdraw/conf`), never a private copy of it.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from quickdraw.cli import CONF, register
from quickdraw.data import synthetic
from quickdraw.data.download import load_categories
from quickdraw.data.schema import MANIFEST
from quickdraw.data.sources import StoreSource
from quickdraw.models.module import QuickDrawModule
from quickdraw.testing.checkpoints import save_module

ROOT = Path(__file__).resolve().parents[1]
# The real sample (6,880 drawings of 344 classes), beside the checkout; benchmarks say when absent.
SAMPLE_DIR = ROOT.parent / "shared" / "data" / "quickdraw-sample"
CLASSES = load_categories()[:340]  # the Kaggle competition's 340 classes


# -- timing ----------------------------------------------------------------------------------------
def percentiles(ms: list[float]) -> tuple[float, float]:
    """(p50, p95) of `ms`."""
    p50, p95 = np.percentile(ms, [50, 95])
    return float(p50), float(p95)


def timed_ms(call: Callable[[int], object], runs: int, warmup: int = 0) -> list[float]:
    """Wall ms of `call(i)` for i in range(runs), after `warmup` untimed calls (i from 0)."""
    for i in range(warmup):
        call(i)
    ms = []
    for i in range(runs):
        t0 = time.perf_counter()
        call(i)
        ms.append((time.perf_counter() - t0) * 1000)
    return ms


@dataclass
class Timing:
    """Items/s of repeated runs by the wall clock and by this process's CPU time.

    Pinned and single-threaded, the two agree on an idle machine; when other jobs share the core,
    the CPU-time rate still measures what the core does for us, so targets are judged on it.
    """

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def extend(self, other: Timing) -> None:
        self.wall += other.wall
        self.cpu += other.cpu


def rates(fn: Callable[[], int], repeats: int) -> Timing:
    """Items per second of each of `repeats` calls of `fn`, which returns how many items it made."""
    out = Timing()
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        n = fn()
        out.wall.append(n / (time.perf_counter() - wall))
        out.cpu.append(n / max(time.process_time() - cpu, 1e-9))
    return out


# -- one core --------------------------------------------------------------------------------------
def usable_cpus() -> list[int]:
    """The CPUs this process may run on, in order (empty where the OS cannot say)."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def pin_one_core(cpu: int | None = None, every_library: bool = False) -> int | None:
    """This process on `cpu` (default: the first it may use) with one torch thread; returns the CPU.

    `every_library`: OpenCV's and pyarrow's thread pools down to one thread too (the data
    pipeline's figures are per core).
    """
    torch.set_num_threads(1)
    if every_library:
        import cv2
        import pyarrow as pa

        cv2.setNumThreads(1)
        pa.set_cpu_count(1)
        pa.set_io_thread_count(1)
    cpus = usable_cpus()
    if not cpus:
        return None
    cpu = cpus[0] if cpu is None else cpu
    os.sched_setaffinity(0, {cpu})
    return cpu


@contextmanager
def pinned(cpu: int | None) -> Iterator[None]:
    """This process on `cpu` for the block (nothing where `cpu` is None), then as before."""
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


# -- the machine -----------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def warn_if_busy(when: str) -> float | None:
    """The 1-minute load average, with a note when other processes compete for the CPUs."""
    if not hasattr(os, "getloadavg"):
        return None
    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    if load > cpus - 0.5:
        print(
            f"NOTE: load average {load:.1f} on {cpus} CPUs {when} the run: other processes compete, "
            "so these figures understate an idle machine"
        )
    return load


# -- a running demo --------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_server(url: str, server: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    """Until `url` answers; RuntimeError with the end of `log` if `server` exits or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}:\n{_tail(log)}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s:\n{_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text()[-3000:] if log.is_file() else "(no log)"


@contextmanager
def running_demo(
    workdir: Path, *overrides: str, cpu: int | None = None
) -> Iterator[tuple[str, subprocess.Popen]]:
    """`python -m quickdraw.demo` with `overrides` on a free loopback port (on core `cpu`,
    output in `workdir/server.log`): its URL and process, stopped afterwards."""
    port = free_port()
    cmd = [sys.executable, "-m", "quickdraw.demo", *overrides, f"server_port={port}",
           f"hydra.run.dir={workdir / 'demo'}"]  # fmt: skip
    pin = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    log_path = workdir / "server.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, preexec_fn=pin
        )
        url = f"http://127.0.0.1:{port}/"
        try:
            wait_for_server(url, server, log_path)
            yield url, server
        finally:
            server.terminate()
            server.wait(timeout=30)


def run(cmd: list[str], log: Path) -> None:
    """`cmd` in the project root, its output into `log`; exits naming the log when it fails."""
    print("$", " ".join(cmd), flush=True)
    with open(log, "w") as f:
        code = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT).returncode
    if code:
        sys.exit(f"command failed ({code}); see {log}")


# -- models and data -------------------------------------------------------------------------------
def model_config(name: str | None, resolve: bool = True, overrides: tuple[str, ...] = ()) -> dict:
    """`quickdraw/conf/model/<name>.yaml` as the training entry point composes it, without `_target_`
    (`name` None: the model that `overrides`, such as `experiment=X`, give)."""
    register()  # the structured-config schemas quickdraw/conf/ refers to, as the commands do
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("train", overrides=[*([f"model={name}"] if name else []), *overrides])
    model = OmegaConf.to_container(cfg.model, resolve=resolve)
    model.pop("_target_")
    return model


def save_checkpoint(name: str, size: int, path: Path) -> Path:
    """An untrained model `name` for the 340 classes at `size` px, saved as training saves it
    (latency does not depend on the weights)."""
    model = QuickDrawModule(
        **model_config(name), classes=CLASSES, in_channels=1, raster={"size": size}
    )
    return save_module(model, path)


def browser_drawings(n: int, root: Path) -> list[str]:
    """Raw generated doodles as the sketchpad sends them: JSON `[[xs, ys, ts], ...]`."""
    words = synthetic.CLASSES
    out = []
    for word in words:
        path = synthetic.write_raw_ndjson(
            root / f"{word}.ndjson", word, -(-n // len(words)), seed=1
        )
        out += [json.dumps(json.loads(line)["drawing"]) for line in path.read_text().splitlines()]
    return out[:n]


def store_of(source: Path, cache: Path) -> Path:
    """`source` converted into a store under `cache/stores` by the library, which names it
    (source, schema version, settings) and converts it again only when the source has changed."""
    where = StoreSource(source=source, cache_dir=cache)
    if not (where.path / MANIFEST).exists():
        print(f"converting {source.name} into {where.path} (cached for re-runs)", flush=True)
    return where.ensure()
