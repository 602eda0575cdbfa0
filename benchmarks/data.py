"""Single-core benchmark of the data pipeline: rasteriser, loader vs the Kaggle-notebook recipe,
converter, store size and loader memory, format readers, the stroke-sequence input.

Run `python -m benchmarks.data [--quick] [--out results.json] [--cache-dir DIR]`;
`--formats-only`, `--sequence-only` and `--integrity-only` run one section alone.

Real drawings come from `../shared/data/quickdraw-sample` (next to the project root) when it is
there; otherwise a generated stand-in of the same size takes the sample's place. The sample is
small (6,880 drawings in 344 classes), so the loader and converter are also measured at scale on
two 240k-row sets: generated doodles (unique rows, but simpler than real drawings: ~25 points
in 2.5 strokes against ~45 in 5.3) and real drawings resampled with replacement from the sample (real point counts, but
repeated text, so never used for a size figure). Memory compares a 1M-row generated store (300k
with `--quick`) with a 100k-row one. Generated sets and stores (converted by the library,
`quickdraw.data.sources`) are cached in `--cache-dir`, so only the first run pays for them (the 1M-row set takes about 15 minutes on two cores);
delete that folder when `quickdraw.data.synthetic` changes.

Data is prepared with every core; every measurement then runs pinned to one core and one thread,
repeated, and reported as best and median wall-clock rate plus the best rate by the process's CPU
time, which other jobs on a shared machine barely move. A summary checks the project's targets.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import logging
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from benchmarks.common import (
    ROOT,
    SAMPLE_DIR,
    Timing,
    cpu_model,
    pin_one_core,
    rates,
    store_of,
    warn_if_busy,
)
from quickdraw.core.files import write_atomic
from quickdraw.data import synthetic
from quickdraw.data.augment import StrokeAugment
from quickdraw.data.conversion import convert
from quickdraw.data.convert_file import ConvertSettings
from quickdraw.data.datamodule import QuickDrawDataModule
from quickdraw.data.formats import binary, sketchrnn
from quickdraw.data.formats.base import InputFile
from quickdraw.data.parsing import parse_drawing
from quickdraw.data.raster import RasterSpec, rasterize
from quickdraw.data.readers import iter_records
from quickdraw.data.sampling import epoch_rows
from quickdraw.data.schema import Manifest
from quickdraw.data.sequence import SequenceSpec
from quickdraw.data.store import Store, shard_check
from quickdraw.data.strokes import StrokeBatch

try:
    import pandas as pd  # the notebooks' CSV reader; only this benchmark uses it
except ImportError:
    pd = None

SAMPLE_ZIP = SAMPLE_DIR / "train_simplified.zip"
MONKEY = SAMPLE_DIR / "ndjson" / "monkey.ndjson"  # 1,000 real drawings of one class
CLASSES = synthetic.CLASSES[:12]
BATCH = 512
DEFAULT_QUOTA = 500  # the DataModule's default per_class: what a training epoch really draws
KAGGLE_CANVAS, KAGGLE_THICKNESS = 256, 6  # the public notebooks' BASE_SIZE and line width
TARGETS = {
    "loader": 20_000, "speedup": 3.0, "convert": 20_000, "size": 0.7, "memory_mb": 150.0,
    "sequence": 50_000,
}  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """How much work each benchmark does; `--quick` trades stability and the 1M rows for time."""

    repeats: int  # timed runs of the rasteriser, the Kaggle recipe and the small conversions
    convert_repeats: int  # timed conversions of each 240k-row set
    big_per_class: int  # rows per class of the 240k-row sets (x 12 classes)
    kaggle_per_class: int  # rows of the generated set per class pushed through the Kaggle recipe
    full_pass_epochs: int  # loader epochs over every row of a 240k-row store
    small_epochs: int  # loader epochs of a few thousand images: several give a stable figure
    memory_per_class: tuple[int, int]  # rows per class of the small and the large memory stores
    memory_repeats: int


FULL = Plan(5, 2, 20_000, 2_000, 3, 10, (8_334, 83_334), 2)
QUICK = Plan(2, 1, 20_000, 500, 1, 4, (8_334, 25_000), 1)


# -- reporting ------------------------------------------------------------------------------------
@dataclass
class Report:
    """Measurements as they are printed, and the target checks for the summary and the JSON file."""

    rows: list[dict] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)

    def section(self, title: str) -> None:
        print(f"\n== {title}", flush=True)
        print(
            f"   {'measurement':64s} {'best':>9s} {'median':>9s} {'CPU-time':>9s}  unit", flush=True
        )

    def add(
        self, section: str, name: str, runs: Timing | list[float], unit: str, lower_is_better=False
    ) -> float:
        """Record and print one measurement; returns the figure targets are judged on.

        That is the best CPU-time rate of a `Timing`, else the best (lowest or highest) value.
        """
        wall = runs.wall if isinstance(runs, Timing) else runs
        best = min(wall) if lower_is_better else max(wall)
        judged = max(runs.cpu) if isinstance(runs, Timing) else best
        row = dict(section=section, name=name, best=best, median=statistics.median(wall), unit=unit)
        if isinstance(runs, Timing):
            row.update(best_cpu_time=judged, runs=runs.wall, runs_cpu_time=runs.cpu)
        self.rows.append(row)
        cpu = _fmt(judged) if isinstance(runs, Timing) else "-"
        print(
            f"   {name:64s} {_fmt(best):>9s} {_fmt(row['median']):>9s} {cpu:>9s}  {unit}",
            flush=True,
        )
        return judged

    def note(self, text: str) -> None:
        print(f"      {text}", flush=True)

    def check(self, metric: str, value: float, target: float, unit: str, at_most=False) -> None:
        ok = value <= target if at_most else value >= target
        target_text = f"{'<=' if at_most else '>='} {_fmt(target)}"
        self.checks.append(
            dict(metric=metric, measured=value, unit=unit, target=target_text, passed=ok)
        )

    def print_summary(self) -> None:
        print("\n== Summary (one core; rates are best runs by CPU time, see Timing)")
        print(f"   {'metric':64s} {'measured':>10s} {'target':>10s}  unit    result")
        for c in self.checks:
            result = "PASS" if c["passed"] else "FAIL"
            measured, target = _fmt(c["measured"]), c["target"]
            print(f"   {c['metric']:64s} {measured:>10s} {target:>10s}  {c['unit']:7s} {result}")


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.2f}"


def _rows(n: int) -> str:
    """1,000,008 -> '1.0M', 240,000 -> '240k'."""
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


# -- data ------------------------------------------------------------------------------------------
def _complete(folder: Path, words=CLASSES) -> bool:
    # Every writer here renames a file into place only once it is whole.
    return all((folder / f"{w}.csv.gz").exists() for w in words)


def _write_gzip(path: Path, data: bytes) -> Path:
    return write_atomic(path, gzip.compress(data, compresslevel=6, mtime=0))


def synthetic_set(cache: Path, per_class: int) -> Path:
    """A folder of `<word>.csv.gz` holding `per_class` generated drawings of each of CLASSES.

    The first rows of a bigger cached set serve when there is one (rows are independent draws);
    otherwise a set of exactly this size is generated with every core.
    """
    own = cache / f"synthetic-{len(CLASSES)}x{per_class}-s0"
    if _complete(own):
        return own
    cached = sorted(
        (int(p.name.split("x")[1].split("-")[0]), p)
        for p in cache.glob(f"synthetic-{len(CLASSES)}x*-s0")
        if _complete(p)
    )
    master = next((p for n, p in cached if n >= per_class), None)
    if master is None:
        print(f"generating {len(CLASSES)} x {per_class:,} drawings into {own} (cached for re-runs)")
        synthetic.generate(own, per_class=per_class, classes=CLASSES, seed=0, progress=True)
        return own
    head = cache / f"head-{len(CLASSES)}x{per_class}"
    if not _complete(head):
        print(f"taking the first {per_class:,} rows per class of {master.name} into {head.name}")
        head.mkdir(parents=True, exist_ok=True)
        for word in CLASSES:
            _write_gzip(head / f"{word}.csv.gz", csv_head(master / f"{word}.csv.gz", per_class))
    return head


def csv_head(path: Path, rows: int) -> bytes:
    """Header and first `rows` rows of a generated CSV (a drawing a line: its JSON has no newline)."""
    with gzip.open(path, "rb") as f:
        return b"".join(line for _, line in zip(range(rows + 1), f, strict=False))


def _csv_bytes(rows) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(synthetic.CSV_HEADER)
    writer.writerows(rows)
    return buf.getvalue().encode()


@dataclass
class Sample:
    """The real sample (or its stand-in): CSV text per member, and the files the converter reads."""

    label: str
    real: bool
    members: dict[str, bytes]
    source: Path  # the zip (or folder): one input file per class
    concat: Path  # every member in one gzip CSV
    one_class: Path | None  # 1,000 real monkey drawings as one gzip Kaggle CSV

    def rows(self) -> list[dict]:
        return [
            r for d in self.members.values() for r in csv.DictReader(io.StringIO(d.decode("utf-8")))
        ]


def load_sample(cache: Path) -> Sample:
    """Read the real sample, or generate a stand-in with a printed note when it is absent."""
    one_class = None
    if SAMPLE_ZIP.exists():
        with zipfile.ZipFile(SAMPLE_ZIP) as zf:
            members = {n: zf.read(n) for n in sorted(zf.namelist()) if n.endswith(".csv")}
        label, source = "real sample", SAMPLE_ZIP
        if MONKEY.exists():
            one_class = cache / "real-monkey.csv.gz"
            if not one_class.exists():
                _write_gzip(one_class, ndjson_to_kaggle_csv(MONKEY))
    else:
        print(f"NOTE: {SAMPLE_ZIP} not found: a generated stand-in of the same size replaces it")
        source = synthetic_set(cache, 6_880 // len(CLASSES))
        members = {p.name: gzip.decompress(p.read_bytes()) for p in sorted(source.glob("*.csv.gz"))}
        label = "generated stand-in"
    concat = cache / f"{label.replace(' ', '-')}-concat.csv.gz"
    if not concat.exists():
        _write_gzip(concat, concat_csv(members))
    return Sample(label, source == SAMPLE_ZIP, members, source, concat, one_class)


def concat_csv(members: dict[str, bytes]) -> bytes:
    """All members as one CSV: the first header, then every member's rows."""
    parts = []
    for i, data in enumerate(members.values()):
        header, _, body = data.partition(b"\n")
        if i == 0:
            parts.append(header + b"\n")
        parts.append(body if not body or body.endswith(b"\n") else body + b"\n")
    return b"".join(parts)


def ndjson_to_kaggle_csv(path: Path) -> bytes:
    """Google's simplified ndjson in Kaggle's CSV layout (the same JSON spacing, no ' UTC')."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        r["drawing"], r["timestamp"] = json.dumps(r["drawing"]), r["timestamp"].removesuffix(" UTC")
        rows.append([r[c] for c in synthetic.CSV_HEADER])
    return _csv_bytes(rows)


def resampled_real_set(cache: Path, sample: Sample, per_class: int) -> Path:
    """12 gzip CSVs of `per_class` rows drawn with replacement from the sample's real drawings.

    Real point and stroke counts at a realistic store size; every key_id is new, so the split and
    the sampling behave as with distinct drawings. Repeated text compresses too well: never a size.
    """
    words = [f"real{c:02d}" for c in range(len(CLASSES))]
    folder = cache / f"real-resampled-{len(words)}x{per_class}"
    if _complete(folder, words):
        return folder
    print(
        f"resampling {len(words)} x {per_class:,} real drawings into {folder} (cached for re-runs)"
    )
    folder.mkdir(parents=True, exist_ok=True)
    rows = sample.rows()
    rng = np.random.default_rng(0)
    for c, word in enumerate(words):
        picks = rng.integers(0, len(rows), per_class).tolist()
        out = []
        for i, j in enumerate(picks):
            row = dict(rows[j], key_id=10**15 + c * 10**7 + i, word=word)
            out.append([row[k] for k in synthetic.CSV_HEADER])
        _write_gzip(folder / f"{word}.csv.gz", _csv_bytes(out))
    return folder


def parquet_bytes(store: Path) -> int:
    return sum(p.stat().st_size for p in store.rglob("*.parquet"))


def uint8_batches(sample: Sample) -> tuple[StrokeBatch, list[StrokeBatch]]:
    """The sample's drawings with uint8 points, as a store hands them over: whole and in batches."""
    texts = [r["drawing"] for r in sample.rows()]
    packed = StrokeBatch.from_drawings([json.loads(t) for t in texts])
    packed = StrokeBatch(
        packed.points.astype(np.uint8), packed.stroke_offsets, packed.drawing_offsets
    )
    starts = range(0, len(packed), BATCH)
    return packed, [packed.select(np.arange(i, min(i + BATCH, len(packed)))) for i in starts]


# -- 1. rasteriser ---------------------------------------------------------------------------------
def bench_raster(sample: Sample, plan: Plan, report: Report) -> None:
    """Images/s of `rasterize` per encoding and antialiasing, on uint8 points as a store hands them over."""
    texts = [r["drawing"] for r in sample.rows()]
    packed, batches = uint8_batches(sample)
    report.section(f"1. Rasteriser: {len(packed):,} drawings of the {sample.label}, batch {BATCH}")
    report.note(
        f"{packed.num_points.mean():.1f} points, {packed.num_strokes.mean():.1f} strokes a drawing"
    )

    def run(spec: RasterSpec, augment: StrokeAugment | None = None) -> Callable[[], int]:
        rng = np.random.default_rng(0)
        return lambda: sum(len(rasterize(augment(b, rng) if augment else b, spec)) for b in batches)

    def from_text() -> int:  # what our code costs given the notebooks' input
        return len(
            rasterize(StrokeBatch.from_drawings([json.loads(t) for t in texts]), RasterSpec())
        )

    for size in (64, 128):
        for encoding in ("gray", "temporal"):
            for aa in (False, True):
                spec = RasterSpec(size=size, encoding=encoding, antialias=aa)
                name = f"{encoding} {size} px{', antialias' if aa else ''}"
                report.add("raster", name, rates(run(spec), plan.repeats), "images/s")
    for encoding in ("gray", "temporal"):
        name = f"StrokeAugment + {encoding} 64 px"
        runs = rates(run(RasterSpec(encoding=encoding), StrokeAugment()), plan.repeats)
        report.add("raster", name, runs, "images/s")
    name = "from CSV text: json.loads + StrokeBatch + gray 64 px"
    report.add("raster", name, rates(from_text, plan.repeats), "images/s")


# -- 2-3. end-to-end loader, side by side with the Kaggle-notebook recipe ------------------------
@dataclass
class LoaderRun:
    """One loader measurement: a store, the epoch's quota per class, and the Kaggle set it faces."""

    name: str
    store: Path
    per_class: int
    epochs: int
    kaggle: str  # the Kaggle-recipe set with the same kind of drawings


def make_module(store: Path, per_class: int) -> QuickDrawDataModule:
    """The training loader under test: augmented, gray 64 px, batch 512, in this process."""
    dm = QuickDrawDataModule(
        store=str(store),
        per_class=per_class,
        batch_size=BATCH,
        augment=StrokeAugment(),
        raster=RasterSpec(),
        num_workers=0,
    )
    dm.prepare_data()
    dm.setup()
    return dm


def epoch_runner(store: Path, per_class: int) -> Callable[[], int]:
    """A function serving the next training epoch (a fresh sample each call); returns its images."""
    dm, epochs = make_module(store, per_class), iter(range(1 << 30))

    def one_epoch() -> int:
        n = 0
        for batch in dm.train_dataloader(epoch=next(epochs)):
            image = batch["image"]
            assert image.dtype == torch.uint8 and tuple(image.shape[1:]) == (1, 64, 64)
            n += image.shape[0]
        return n

    return one_epoch


def kaggle_draw(strokes: list) -> np.ndarray:
    """One `cv2.line` per segment on a 256 px canvas, then an area resize to 64 px."""
    img = np.zeros((KAGGLE_CANVAS, KAGGLE_CANVAS), np.uint8)
    for xs, ys in strokes:
        for i in range(len(xs) - 1):
            cv2.line(img, (xs[i], ys[i]), (xs[i + 1], ys[i + 1]), 255, KAGGLE_THICKNESS)
    return cv2.resize(img, (64, 64), interpolation=cv2.INTER_AREA)


def kaggle_notebook(csv_texts: list[bytes]) -> int:
    """CSV text -> (B, 1, 64, 64) uint8 batch tensors and labels as the notebooks do it; returns images."""
    if pd is not None:
        df = pd.concat([pd.read_csv(io.BytesIO(t)) for t in csv_texts], ignore_index=True)
        drawings = df["drawing"].tolist()
        labels = df["word"].astype("category").cat.codes.to_numpy().astype(np.int64)
    else:
        rows = [r for t in csv_texts for r in csv.DictReader(io.StringIO(t.decode("utf-8")))]
        drawings = [r["drawing"] for r in rows]
        index = {w: i for i, w in enumerate(sorted({r["word"] for r in rows}))}
        labels = np.array([index[r["word"]] for r in rows], np.int64)
    n = 0
    for start in range(0, len(drawings), BATCH):
        chunk = drawings[start : start + BATCH]
        x = np.zeros((len(chunk), 1, 64, 64), np.uint8)
        for i, text in enumerate(chunk):
            x[i, 0] = kaggle_draw(json.loads(text))
        batch = {
            "image": torch.from_numpy(x),
            "label": torch.from_numpy(labels[start : start + BATCH]),
        }
        n += len(batch["image"])
    return n


def drawing_stats(csv_texts: list[bytes]) -> str:
    """Mean points and strokes a drawing: what the per-image cost of every pipeline scales with."""
    drawings = [
        json.loads(r["drawing"]) for t in csv_texts for r in csv.DictReader(io.StringIO(t.decode()))
    ]
    points = np.mean([sum(len(xs) for xs, _ in d) for d in drawings])
    return f"{points:.1f} points, {np.mean([len(d) for d in drawings]):.1f} strokes a drawing"


def epoch_shape(store: Path, per_class: int) -> str:
    """Images an epoch serves, and how many of them come from each Parquet row group it decodes."""
    index = Store(store)["train"]
    # The DataModule's defaults (seed 0, shuffle_window 16384), epoch 0.
    rows = epoch_rows(index, np.full(len(index.class_rows), per_class), 0, 0, 16_384)
    groups = len(np.unique(np.searchsorted(index.rg_start, rows, side="right") - 1))
    return (
        f"{len(rows) // BATCH * BATCH:,} images/epoch; a row group read (mean {index.rg_rows.mean():.0f} rows) "
        f"serves {len(rows) / max(groups, 1):.0f} of them"
    )


def bench_loader_vs_kaggle(
    runs: list[LoaderRun], kaggle_sets: dict[str, list[bytes]], plan: Plan, report: Report
) -> None:
    """Loader epochs and Kaggle-recipe passes, interleaved round by round so that both see the same
    machine load; then the loader's figures, the recipe's, and the speed-ups of best runs."""
    runners = {r.name: epoch_runner(r.store, r.per_class) for r in runs}
    ours = {r.name: Timing() for r in runs}
    theirs = {k: Timing() for k in kaggle_sets}
    for i in range(max(plan.repeats, *(r.epochs for r in runs))):
        for name, texts in kaggle_sets.items():
            if i < plan.repeats:
                theirs[name].extend(rates(lambda t=texts: kaggle_notebook(t), 1))
        for r in runs:
            if i < r.epochs:
                ours[r.name].extend(rates(runners[r.name], 1))

    report.section(
        f"2. End-to-end loader: store -> train loader -> StrokeAugment + gray 64 px uint8, batch {BATCH}"
    )
    best = {}
    for r in runs:
        files = sum(len(v) for v in Manifest.load(r.store).shards.values())
        title = f"{r.name} ({files:,} files, {r.epochs} epoch{'s' * (r.epochs > 1)})"
        best[r.name] = report.add("loader", title, ours[r.name], "images/s")
        report.note(epoch_shape(r.store, r.per_class))
        report.check(f"loader: {r.name}", best[r.name], TARGETS["loader"], "img/s")

    reader = "pandas.read_csv" if pd is not None else "csv module (pandas is not installed)"
    report.section(
        f"3. Kaggle-notebook recipe: {reader} + json.loads + cv2.line@256 px + INTER_AREA to 64 px"
    )
    for name in kaggle_sets:
        recipe = report.add("kaggle", name, theirs[name], "images/s")
        report.note(drawing_stats(kaggle_sets[name]))
        for r in (r for r in runs if r.kaggle == name):
            report.note(f"our loader, {r.name}: {best[r.name] / recipe:.1f}x")
            report.check(
                f"speed-up vs Kaggle: {r.name}", best[r.name] / recipe, TARGETS["speedup"], "x"
            )


# -- 4. converter ----------------------------------------------------------------------------------
def bench_convert(
    sources: dict[str, tuple[Path, int]], scratch: Path, report: Report
) -> dict[str, Path]:
    """Rows/s of `convert(workers=1)`; `sources` maps a name to (input, repeats). Returns the stores."""
    report.section("4. Converter: gzip CSV / zip -> Parquet store, workers=1")
    stores = {}
    for i, (name, (source, repeats)) in enumerate(sources.items()):
        store = scratch / f"convert-{i}"

        def once(source: Path = source, store: Path = store) -> int:
            shutil.rmtree(store, ignore_errors=True)
            m = convert(source, store, ConvertSettings(), workers=1, progress=False)
            return sum(s["rows_read"] for s in m.sources)

        best = report.add("convert", name, rates(once, repeats), "rows/s")
        report.check(f"converter: {name}", best, TARGETS["convert"], "rows/s")
        stores[name] = store
    return stores


# -- 5. size ---------------------------------------------------------------------------------------
def bench_size(pairs: dict[str, tuple[int, Path]], report: Report) -> None:
    """Parquet bytes over gzip-CSV bytes of the same rows; `pairs` maps a name to (gzip bytes, store)."""
    report.section("5. Size: the store's *.parquet bytes / gzip CSV (level 6) bytes, same rows")
    for name, (gz, store) in pairs.items():
        pq_bytes = parquet_bytes(store)
        files = len(list(store.rglob("*.parquet")))
        title = f"{name}: {pq_bytes / 1e6:.2f} MB in {files:,} files / {gz / 1e6:.2f} MB"
        ratio = report.add("size", title, [pq_bytes / gz], "ratio", lower_is_better=True)
        report.note(column_shares(store))
        report.check(f"size ratio: {name}", ratio, TARGETS["size"], "ratio", at_most=True)


def column_shares(store: Path) -> str:
    """Where a store's bytes go: compressed column chunks, and the rest (footers, headers)."""
    sizes: dict[str, int] = {}
    total = parquet_bytes(store)
    for path in store.rglob("*.parquet"):
        meta = pq.read_metadata(path)
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for c in range(group.num_columns):
                chunk = group.column(c)
                name = chunk.path_in_schema.split(".")[0]
                sizes[name] = sizes.get(name, 0) + chunk.total_compressed_size
    sizes["footers"] = total - sum(sizes.values())
    return "bytes: " + ", ".join(
        f"{k} {v / total:.0%}" for k, v in sorted(sizes.items(), key=lambda kv: -kv[1])
    )


# -- 6. memory -------------------------------------------------------------------------------------
def _status_kb(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def memory_probe(store: Path) -> dict:
    """Run in a fresh process: peak RSS over one augmented training epoch of `store`."""
    logging.basicConfig(level=logging.ERROR)
    rss_start = _status_kb("VmRSS") or 0
    dm = make_module(store, DEFAULT_QUOTA)
    images = sum(batch["image"].shape[0] for batch in dm.train_dataloader(epoch=0))
    peak = _status_kb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # both KiB
    return {"peak_rss_mb": peak / 1024, "rss_after_imports_mb": rss_start / 1024, "images": images}


def peak_rss(store: Path) -> dict:
    """`memory_probe` in a fresh interpreter, so each figure owes nothing to the others."""
    cmd = [sys.executable, "-m", "benchmarks.data", "--memory-probe", str(store)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise RuntimeError(f"memory probe of {store} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_memory(stores: dict[str, Path], plan: Plan, report: Report) -> None:
    """Peak RSS of one epoch over each store (a fresh process each); the first is the baseline."""
    report.section(
        f"6. Memory: peak RSS (VmHWM) of one augmented epoch, per_class={DEFAULT_QUOTA}, fresh process"
    )
    peaks = {}
    for name, store in stores.items():
        probes = [peak_rss(store) for _ in range(plan.memory_repeats)]
        title = f"{name} ({Manifest.load(store).rows['train']:,} train rows, {probes[0]['images']:,} images)"
        peaks[name] = report.add("memory", title, [p["peak_rss_mb"] for p in probes], "MB", True)
        report.note(
            f"{probes[0]['rss_after_imports_mb']:.0f} MB of it already resident after the imports"
        )
    (small, low), (large, high) = peaks.items()
    report.add("memory", f"difference, {large} - {small}", [high - low], "MB", True)
    report.check(
        f"peak RSS, {large} - {small}", high - low, TARGETS["memory_mb"], "MB", at_most=True
    )


# -- main ------------------------------------------------------------------------------------------
@dataclass
class Data:
    """Everything the benchmarks read, prepared (and cached) before the process is pinned."""

    sample: Sample
    sample_store: Path  # the sample zip converted: a store file per member and split
    concat_store: Path  # the sample as one CSV, converted
    one_class_store: Path | None  # real monkey drawings: full-size row groups
    generated: Path  # 240k generated rows as gzip CSVs
    generated_store: Path
    resampled: Path | None  # 240k rows resampled from the real sample
    resampled_store: Path | None
    memory_stores: dict[str, Path]  # small, then large


def prepare(plan: Plan, cache: Path) -> Data:
    """Generate and convert what is not cached yet, with every core."""
    small_n, large_n = plan.memory_per_class
    memory_large = synthetic_set(cache, large_n)  # first: the smaller sets are its first rows
    memory_small = synthetic_set(cache, small_n)
    generated = synthetic_set(cache, plan.big_per_class)
    sample = load_sample(cache)
    resampled = resampled_real_set(cache, sample, plan.big_per_class) if sample.real else None
    return Data(
        sample=sample,
        sample_store=store_of(sample.source, cache),
        concat_store=store_of(sample.concat, cache),
        one_class_store=sample.one_class and store_of(sample.one_class, cache),
        generated=generated,
        generated_store=store_of(generated, cache),
        resampled=resampled,
        resampled_store=resampled and store_of(resampled, cache),
        memory_stores={
            f"{_rows(len(CLASSES) * n)}-row store": store_of(folder, cache)
            for n, folder in ((small_n, memory_small), (large_n, memory_large))
        },
    )


def loader_plan(plan: Plan, data: Data) -> tuple[list[LoaderRun], dict[str, list[bytes]]]:
    """The loader runs and the Kaggle-recipe sets they are compared with."""
    sample, big = data.sample, _rows(len(CLASSES) * plan.big_per_class)
    whole = max(Manifest.load(data.sample_store).counts["train"])  # per_class taking every drawing
    large_name, large_store = list(data.memory_stores.items())[1]
    # One CSV text, as the notebooks read Kaggle's full-size files: 344 tiny read_csv calls would
    # cost the recipe ~30 us a drawing that it never pays on the real data.
    real = f"{sample.label} as one CSV, all {len(sample.rows()):,} drawings"
    gen = f"generated, first {plan.kaggle_per_class:,} rows of each class"
    # (name, store, per_class, epochs, Kaggle set)
    table = [
        (f"{sample.label}, class files, all", data.sample_store, whole, plan.small_epochs, real),
        (f"{sample.label}, one CSV, all", data.concat_store, whole, plan.small_epochs, real),
        (
            f"real resampled {big}, all",
            data.resampled_store,
            plan.big_per_class,
            plan.full_pass_epochs,
            real,
        ),
        (
            f"real resampled {big}, per_class={DEFAULT_QUOTA}",
            data.resampled_store,
            DEFAULT_QUOTA,
            plan.small_epochs,
            real,
        ),
        (
            f"generated {big}, all",
            data.generated_store,
            plan.big_per_class,
            plan.full_pass_epochs,
            gen,
        ),
        (
            f"generated {large_name}, per_class={DEFAULT_QUOTA}",
            large_store,
            DEFAULT_QUOTA,
            plan.small_epochs,
            gen,
        ),
    ]
    runs = [LoaderRun(*row) for row in table if row[1] is not None]
    generated_head = [
        csv_head(f, plan.kaggle_per_class) for f in sorted(data.generated.glob("*.csv.gz"))
    ]
    return runs, {real: [gzip.decompress(sample.concat.read_bytes())], gen: generated_head}


def convert_and_size(plan: Plan, data: Data, cache: Path, report: Report) -> None:
    """Converter rows/s, then the size of what it wrote (repeated-text sets are timed, never sized)."""
    sample, big = data.sample, _rows(len(CLASSES) * plan.big_per_class)
    sources = {
        f"generated, 12 gzip CSVs, {big} unique rows": (data.generated, plan.convert_repeats),
        f"{sample.label}, {len(sample.members)} class files": (sample.source, plan.repeats),
        f"{sample.label}, one gzip CSV": (sample.concat, plan.repeats),
    }
    if data.resampled is not None:
        sources[f"real resampled, 12 gzip CSVs, {big} rows"] = (
            data.resampled,
            plan.convert_repeats,
        )
    scratch = Path(tempfile.mkdtemp(prefix="convert-", dir=cache))
    try:
        generated, per_member, concat, *_ = bench_convert(sources, scratch, report).values()
        pairs = {
            f"{sample.label}, a store file per class file and split": (
                sum(
                    len(gzip.compress(d, compresslevel=6, mtime=0)) for d in sample.members.values()
                ),
                per_member,
            ),
            f"{sample.label}, as one CSV": (sample.concat.stat().st_size, concat),
            f"generated {big} unique rows": (
                sum(f.stat().st_size for f in data.generated.glob("*.csv.gz")),
                generated,
            ),
        }
        if data.one_class_store is not None:
            one_class_gz = sample.one_class.stat().st_size
            pairs["real monkey.ndjson (1 class) as Kaggle CSV"] = (
                one_class_gz,
                data.one_class_store,
            )
        bench_size(pairs, report)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# -- 7. formats -------------------------------------------------------------------------------------
def format_files(sample: Sample, cache: Path, rows: int) -> dict[str, Path]:
    """`rows` drawings of the sample (resampled, fresh key_ids) as one class in each layout."""
    drawings = [parse_drawing(r["drawing"]) for r in sample.rows()]
    picks = np.random.default_rng(0).integers(0, len(drawings), rows)
    folder = cache / f"formats-{sample.label.replace(' ', '-')}-{rows}"
    files = {kind: folder / f"cat.{kind}" for kind in ("ndjson", "bin", "npz")}
    if all(p.exists() for p in files.values()):
        return files
    folder.mkdir(parents=True, exist_ok=True)
    strokes = [np.split(drawings[i][0], np.cumsum(drawings[i][1])[:-1]) for i in picks]
    lines = (
        json.dumps({"key_id": str(k + 1), "word": "cat", "drawing": [[s[:, 0].tolist(), s[:, 1].tolist()] for s in d]})
        for k, d in enumerate(strokes)
    )  # fmt: skip
    files["ndjson"].write_text("\n".join(lines) + "\n")
    files["bin"].write_bytes(b"".join(binary.encode(k + 1, d) for k, d in enumerate(strokes)))
    batch = StrokeBatch.concat([StrokeBatch.from_drawings([[s.T for s in d]]) for d in strokes])
    column = np.empty(rows, object)
    for i, d in enumerate(sketchrnn.batch_to_stroke3(batch)):
        column[i] = d
    np.savez(files["npz"], train=column)  # sketch-rnn's own layout: no key_ids, not in the frame
    return files


def bench_formats(sample: Sample, plan: Plan, cache: Path, report: Report) -> None:
    """Rows/s of each reader alone, and of `convert(workers=1)` over the same drawings."""
    rows = 100_000
    files = format_files(sample, cache, rows)
    report.section(
        f"7. Formats: {_rows(rows)} {sample.label} drawings as ndjson, Google .bin, sketch-rnn .npz"
    )

    def read(path: Path) -> Callable[[], int]:
        return lambda: sum(
            1 for r in iter_records(InputFile(path), 1 << 34) if parse_drawing(r[-1])
        )

    for path in files.values():
        report.add(
            "formats",
            f"reader + parse_drawing: {path.name}",
            rates(read(path), plan.repeats),
            "rows/s",
        )
    scratch = Path(tempfile.mkdtemp(prefix="formats-", dir=cache))
    try:
        for path in files.values():

            def once(path: Path = path) -> int:
                shutil.rmtree(scratch / "store", ignore_errors=True)
                m = convert(path, scratch / "store", ConvertSettings(), workers=1, progress=False)
                return sum(s["rows_read"] for s in m.sources)

            report.add(
                "formats",
                f"convert, workers=1: {path.name}",
                rates(once, plan.convert_repeats),
                "rows/s",
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# -- 8. the sequence input --------------------------------------------------------------------------
def bench_sequence(sample: Sample, plan: Plan, report: Report) -> None:
    """Drawings/s of the `sequence` input (padded pen moves + lengths), batch by batch, from
    uint8 points as a store hands them over; with the training augmentation before it too."""
    packed, batches = uint8_batches(sample)
    report.section(
        f"8. Sequence input: {len(packed):,} drawings of the {sample.label}, batch {BATCH}"
    )
    over = {m: float((packed.num_points > m).mean()) for m in (64, 128, 256)}
    report.note(
        f"{packed.num_points.mean():.1f} points a drawing; longer than 64/128/256 points: "
        + ", ".join(f"{share:.1%}" for share in over.values())
    )

    def run(spec: SequenceSpec, augment: StrokeAugment | None = None) -> Callable[[], int]:
        rng = np.random.default_rng(0)
        return lambda: sum(len(spec(augment(b, rng) if augment else b).lengths) for b in batches)

    judged = 0.0
    for max_points in (64, 128, 256):
        name = f"SequenceSpec(max_points={max_points})"
        rate = report.add(
            "sequence", name, rates(run(SequenceSpec(max_points)), plan.repeats), "drawings/s"
        )
        judged = rate if max_points == 128 else judged
    name = "StrokeAugment + SequenceSpec(max_points=128)"
    runs = rates(run(SequenceSpec(), StrokeAugment()), plan.repeats)
    report.add("sequence", name, runs, "drawings/s")
    report.check("sequence input (max_points=128)", judged, TARGETS["sequence"], "drawings/s")


# -- 9. integrity checks ---------------------------------------------------------------------------
def bench_integrity(store: Path, plan: Plan, report: Report) -> None:
    """Rows/s of reading every train row of `store` a row group at a time as the loader does
    (open, page CRC-32s and footer SHA-256 checked, strokes decoded), with the checks and without,
    runs interleaved; and MB/s of `verify=true`'s SHA-256 of whole shards."""
    report.section(f"9. Integrity checks: every train row of {store.name}, a row group at a time")

    def full_pass(verify: bool) -> Callable[[], int]:
        def once() -> int:
            index = Store(store, verify=verify)["train"]
            for start, rows in zip(index.rg_start, index.rg_rows, strict=True):
                index.gather(np.arange(start, start + rows))
            return len(index)

        return once

    runs = {True: Timing(), False: Timing()}
    for _ in range(plan.repeats):
        for verify in runs:
            runs[verify].extend(rates(full_pass(verify), 1))
    checked = report.add("integrity", "read with checksums (the default)", runs[True], "rows/s")
    unchecked = report.add("integrity", "read without (Store(verify=False))", runs[False], "rows/s")
    report.note(f"cost of the checks: {1 - checked / unchecked:.1%} of read throughput")
    shards = [store / p for files in Manifest.load(store).shards.values() for p in files]
    mb = sum(p.stat().st_size for p in shards) / 1e6

    def hash_all() -> int:
        for path in shards:
            shard_check(path)
        return 1

    per_s = rates(hash_all, plan.repeats)
    runs_mb = Timing([r * mb for r in per_s.wall], [r * mb for r in per_s.cpu])
    report.add(
        "integrity", f"verify=true: SHA-256 of {len(shards)} shards ({mb:.0f} MB)", runs_mb, "MB/s"
    )


def run(plan: Plan, data: Data, cache: Path, report: Report) -> None:
    """The nine benchmarks in order, on one core."""
    bench_raster(data.sample, plan, report)
    bench_loader_vs_kaggle(*loader_plan(plan, data), plan, report)
    convert_and_size(plan, data, cache, report)
    bench_memory(data.memory_stores, plan, report)
    bench_formats(data.sample, plan, cache, report)
    bench_sequence(data.sample, plan, report)
    bench_integrity(data.resampled_store or data.generated_store, plan, report)


def integrity_store(plan: Plan, cache: Path) -> Path:
    """The 240k-row store section 9 reads (real drawings resampled, or generated), alone."""
    sample = load_sample(cache)
    if sample.real:
        folder = resampled_real_set(cache, sample, plan.big_per_class)
    else:
        folder = synthetic_set(cache, plan.big_per_class)
    return store_of(folder, cache)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer repeats; a 300k-row memory store, not 1M"
    )
    parser.add_argument("--out", type=Path, help="also write every figure to this JSON file")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "quickdraw-bench",
        help="generated CSVs and converted stores, kept for re-runs (default: %(default)s)",
    )
    parser.add_argument(
        "--formats-only", action="store_true", help="only section 7: the .bin and .npz readers"
    )
    parser.add_argument(
        "--sequence-only", action="store_true", help="only section 8: the stroke-sequence input"
    )
    parser.add_argument(
        "--integrity-only",
        action="store_true",
        help="only section 9: read speed with and without the shards' checksums",
    )
    parser.add_argument("--memory-probe", type=Path, help=argparse.SUPPRESS)  # internal: one child
    args = parser.parse_args()
    if args.memory_probe:
        pin_one_core(every_library=True)
        print(json.dumps(memory_probe(args.memory_probe)))
        return
    # The sample's 20-row classes are below per_class, which the DataModule warns about each epoch.
    logging.getLogger("quickdraw.data.datamodule").setLevel(logging.ERROR)
    plan = QUICK if args.quick else FULL
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    if args.formats_only:
        sample = load_sample(args.cache_dir)
        format_files(sample, args.cache_dir, 100_000)
        print(f"\nquickdraw format readers: CPU {pin_one_core(every_library=True)} only, 1 thread")
        bench_formats(sample, plan, args.cache_dir, Report())
        return
    if args.integrity_only:
        store = integrity_store(plan, args.cache_dir)
        print(
            f"\nquickdraw integrity checks: CPU {pin_one_core(every_library=True)} only, 1 thread"
        )
        bench_integrity(store, plan, Report())
        return
    if args.sequence_only:
        sample = load_sample(args.cache_dir)
        print(f"\nquickdraw sequence input: CPU {pin_one_core(every_library=True)} only, 1 thread")
        report = Report()
        bench_sequence(sample, plan, report)
        report.print_summary()
        return
    data = prepare(plan, args.cache_dir)

    cpu = pin_one_core(every_library=True)
    meta = {
        "mode": "quick" if args.quick else "full",
        "cpu": cpu,
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "opencv": cv2.__version__,
        "pyarrow": pa.__version__,
        "pandas": pd.__version__ if pd is not None else None,
        "sample": str(data.sample.source),
        "plan": asdict(plan),
    }
    print(
        f"\nquickdraw data benchmark ({meta['mode']}): CPU {cpu} only ({meta['cpu_model']}), 1 thread"
    )
    print(
        f"{data.sample.label}: {data.sample.source}; generated sets: {len(CLASSES)} classes in {args.cache_dir}"
    )
    load_before = warn_if_busy("before")
    report = Report()
    run(plan, data, args.cache_dir, report)
    report.print_summary()
    meta["load_average"] = {"before": load_before, "after": warn_if_busy("after")}
    if args.out:
        payload = dict(meta=meta, targets=TARGETS, results=report.rows, summary=report.checks)
        args.out.write_text(json.dumps(payload, indent=2))
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
