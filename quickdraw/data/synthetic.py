"""Procedural Quick, Draw!-style doodles, so a fresh clone trains end to end without a download.

Each drawing is built like a person draws it: a class template picks the parts, how many strokes
they take and in which order and direction; the whole drawing is then rotated, stretched and
warped, every stroke gets smooth hand wobble, and a pen model turns it into raw `x, y, t` points
(slow at corners, pauses between strokes). The simplified form comes from Google's own procedure
([`quickdraw.data.simplify.simplify_drawing`][quickdraw.data.simplify.simplify_drawing]), so synthetic and real data share one path.

Training makes the set on first use (`data.synthetic_per_class`, under `paths.data_dir`); the
library call is [`generate`][quickdraw.data.synthetic.generate].
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import os
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import nullcontext
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from quickdraw.core.errors import SettingError
from quickdraw.core.files import atomic_open, json_text
from quickdraw.data.artefacts import artefact_kind
from quickdraw.data.doodles import CLASSES, SHAPES, random_sign, rotate, stray_mark
from quickdraw.data.formats.base import SUFFIXES
from quickdraw.data.origin import MARKER, MarkerError, listed, mark_generated
from quickdraw.data.simplify import simplify_drawing

log = logging.getLogger(__name__)

CSV_HEADER = ("countrycode", "drawing", "key_id", "recognized", "timestamp", "word")
CHUNK = 500  # rows per random stream: sets determinism granularity, not just parallelism
CANVAS = 600.0
# Share of players per country, roughly as in the real data; "NA" is Namibia, not missing.
COUNTRIES = dict(
    US=45,
    GB=7,
    CA=4,
    DE=3.2,
    AU=2.4,
    RU=2.3,
    BR=1.9,
    FI=1.8,
    SE=1.7,
    CZ=1.5,
    PL=1.4,
    FR=1.4,
    TH=1.3,
    KR=1.2,
    IT=1.2,
    PH=1.2,
    HU=1.1,
    SA=1,
    NL=1,
    RO=0.8,
    ID=0.8,
    SK=0.8,
    VN=0.7,
    JP=0.7,
    IN=0.7,
    AE=0.6,
    UA=0.6,
    NO=0.6,
    TW=0.5,
    MY=0.5,
    NZ=0.4,
    NA=0.3,
    ZA=0.3,
)
_CODES = np.array(list(COUNTRIES))
_CODE_P = np.array(list(COUNTRIES.values())) / sum(COUNTRIES.values())
_EPOCH = datetime(2017, 1, 5)


def _arclength(p: np.ndarray) -> np.ndarray:
    seg = np.diff(p, axis=0)
    return np.concatenate([[0.0], np.cumsum(np.hypot(seg[:, 0], seg[:, 1]))])


def _wobble(arc: np.ndarray, rng: np.random.Generator, amp: float, wavelength: float) -> np.ndarray:
    """Smooth 2-D offsets along the pen path: random knots joined by smoothstep (C1, not white noise)."""
    u = arc / wavelength
    knots = rng.normal(0.0, amp, (int(u.max()) + 2, 2))
    i = u.astype(np.int64)
    f = (u - i)[:, None]
    return knots[i] + (knots[i + 1] - knots[i]) * f * f * (3 - 2 * f)


def _pen(
    path: np.ndarray,
    sid: np.ndarray,
    corners: np.ndarray,
    rng: np.random.Generator,
    speed: float,
    dt: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sample strokes as a touch screen does: a jittery clock, the pen slowing into every corner.

    Each piece between corners is one hand movement; all strokes are done at once (no Python
    loop per stroke), which is most of the generator's speed. Returns x y, arc position,
    time and stroke id per sample.
    """
    arc = _arclength(path)
    seg = np.diff(path, axis=0)
    bend = np.abs((np.diff(np.arctan2(seg[:, 1], seg[:, 0])) + np.pi) % (2 * np.pi) - np.pi)
    bend = np.concatenate([[0.0], np.cumsum(bend), [0.0]])
    bend[-1] = bend[-2]
    a, b = corners[:-1], corners[1:]
    same = sid[a] == sid[b]  # the hop between two strokes is a pen lift, not a movement
    a, b = a[same], b[same]
    owner, length = sid[a], arc[b] - arc[a]
    # Hands slow down in bends (the 2/3 power law), so curves get denser samples than lines.
    turning = bend[np.maximum(b - 1, 0)] - bend[a]
    dur = 25.0 + length / speed * rng.uniform(0.8, 1.25, len(a)) + turning * rng.uniform(40, 90)
    dur = np.ceil(dur)  # whole milliseconds keep the sums below exact, so no tick slips a stroke
    k = owner[-1] + 1
    total = np.bincount(owner, dur, k)
    lifts = np.append(0, rng.integers(120, 700, k - 1))  # lift, look, put the pen down again
    begin = np.cumsum(lifts + np.append(0, total[:-1]))
    piece_t = begin[owner] + np.cumsum(dur) - dur - (np.cumsum(total) - total)[owner]
    t_owner, t_local = _clock(total, dt, rng)
    t = begin[t_owner] + t_local
    j = np.searchsorted(piece_t, t, side="right") - 1
    tau = np.clip((t - piece_t[j]) / dur[j], 0.0, 1.0)
    # Blend of constant speed and the minimum-jerk profile of a point-to-point hand movement.
    s = arc[a[j]] + length[j] * (0.3 * tau + 0.7 * tau**3 * (10 - 15 * tau + 6 * tau**2))
    xy = np.stack([np.interp(s, arc, path[:, 0]), np.interp(s, arc, path[:, 1])], 1)
    return xy, s, t, t_owner


def _clock(total: np.ndarray, dt: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sample times of strokes lasting `total` ms: 0, ticks every `dt`-`2dt` ms, the lift.

    Returns stroke id and ms since the stroke began, ordered by stroke then time.
    """
    k = len(total)
    m = (total / dt).astype(np.int64) + 2
    steps = rng.integers(dt, 2 * dt, m.sum())
    owner = np.repeat(np.arange(k), m)
    ticks = np.cumsum(steps)
    ticks -= (ticks - steps)[np.cumsum(m) - m][owner]  # restart the count at every stroke
    moving = ticks < total[owner]
    owner = np.concatenate([np.arange(k), owner[moving], np.arange(k)])
    local = np.concatenate([np.zeros(k), ticks[moving], total])
    order = np.lexsort((local, owner))
    return owner[order], local[order]


def _place(points: np.ndarray, rng: np.random.Generator, max_rot: float) -> np.ndarray:
    """Rotate, stretch, shear, mirror and warp the unit-frame drawing, then size and place it."""
    stretch = np.exp(rng.normal(0.0, 0.12))
    m = np.array([[stretch, rng.normal(0.0, 0.08)], [0.0, 1.0 / stretch]])
    m = rotate(m, rng.uniform(-max_rot, max_rot)) * (random_sign(rng), 1)
    p = points @ m.T
    # A gentle sine warp bends straight lines the way a sweeping wrist does.
    freq, phase = rng.uniform(1, 2.5, 2), rng.uniform(0, 2 * np.pi, 2)
    p = p + rng.normal(0.0, 0.035, 2) * np.sin(freq * p[:, ::-1] + phase)
    lo, hi = p.min(0), p.max(0)
    scale = rng.uniform(120, 480) / max(float((hi - lo).max()), 1e-6)
    offset = rng.uniform(20, np.maximum(CANVAS - 20 - (hi - lo) * scale, 21))
    return (p - lo) * scale + offset


def raw_drawing(word: str, rng: np.random.Generator) -> list[np.ndarray]:
    """One drawing of `word` as raw strokes: (N, 3) float64 x, y (0-600 canvas) and t (ms)."""
    if word not in SHAPES:
        raise KeyError(f"no synthetic class {word!r}; choose from {', '.join(CLASSES)}")
    template, max_rot = SHAPES[word]
    strokes = template(rng)
    if rng.random() < 0.07:
        strokes.insert(int(rng.integers(len(strokes) + 1)), stray_mark(rng))
    flat, sid, joints = [], [], []
    for i, stroke in enumerate(strokes):  # one point array for all strokes, corners marked
        joints.append(sum(map(len, flat)) + np.cumsum([0, *(len(q) - 1 for q in stroke)]))
        flat.append(np.concatenate([stroke[0], *(q[1:] for q in stroke[1:])]))
        sid.append(np.full(len(flat[-1]), i))
    points = _place(np.concatenate(flat), rng, max_rot)
    size = float(np.ptp(points, axis=0).max())
    speed, dt = rng.lognormal(0.0, 0.35), int(rng.integers(8, 16))  # px/ms, ms between samples
    xy, arc, t, owner = _pen(points, np.concatenate(sid), np.concatenate(joints), rng, speed, dt)
    xy += _wobble(arc, rng, size * rng.uniform(0.005, 0.02), size * rng.uniform(0.2, 0.5))
    xyt = np.column_stack([np.round(xy, 1), t])
    return np.split(xyt, np.cumsum(np.bincount(owner))[:-1])


def simplified_drawing(word: str, rng: np.random.Generator) -> list[np.ndarray]:
    """One drawing of `word` in the simplified form: (M, 2) uint8 strokes in the 0-255 frame."""
    return simplify_drawing([s[:, :2] for s in raw_drawing(word, rng)])


def _key_ids(seed: int, word: str, rows: np.ndarray) -> np.ndarray:
    """16-digit key_ids, unique by construction: a seeded bijection of (class, row).

    (class code, row) fills 52 bits; an invertible mix on 53 bits, walked until it lands below
    9e15, maps distinct inputs to distinct outputs, so no class needs to see another's ids.
    """
    mask, span = np.uint64(2**53 - 1), np.uint64(9 * 10**15)
    key = np.random.default_rng([seed, 0x6B6579]).integers(0, 2**53, 3, dtype=np.uint64)
    x = (np.uint64(_class_code(word)) << np.uint64(21)) | rows.astype(np.uint64)

    def mix(x: np.ndarray) -> np.ndarray:
        for k, mult in zip(key, (0x5DEECE66D, 0x9E3779B97F4B, 0x2545F4914F6D), strict=True):
            x = ((x + k) & mask) * np.uint64(mult) & mask  # odd multiplier: invertible mod 2^53
            x ^= x >> np.uint64(26)
        return x

    x = mix(x)
    while (out := x >= span).any():
        x[out] = mix(x[out])
    return (x + np.uint64(10**15)).astype(np.int64)


def _class_code(word: str) -> int:
    return zlib.crc32(word.encode()) & 0x7FFFFFFF


def _chunk(word: str, seed: int, chunk: int, n: int, raw: bool) -> bytes:
    """Rows `chunk * CHUNK ...` of one class as CSV or raw-ndjson text; the unit of parallel work."""
    if n > 2**21 - chunk * CHUNK:
        raise SettingError("at most 2,097,152 drawings per class (the key_id layout)")
    crc = zlib.crc32(word.encode())
    rng = np.random.default_rng([seed, crc, chunk])
    meta = np.random.default_rng([seed, crc, chunk, 1])  # metadata apart: drawings stay the same
    keys = _key_ids(seed, word, np.arange(chunk * CHUNK, chunk * CHUNK + n))
    countries = meta.choice(_CODES, n, p=_CODE_P)
    recognized = meta.random(n) < 0.93
    stamps = meta.integers(0, 86 * 86400 * 10**5, n)  # 10-microsecond ticks over ~3 months
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for i in range(n):
        when = _EPOCH + timedelta(microseconds=10 * int(stamps[i]))
        frac = f"{when.microsecond // 10:05d}".rstrip("0") or "0"
        timestamp = f"{when:%Y-%m-%d %H:%M:%S}.{frac}"
        strokes = raw_drawing(word, rng)
        if raw:
            row = {
                "word": word,
                "countrycode": str(countries[i]),
                "timestamp": f"{timestamp} UTC",
                "recognized": bool(recognized[i]),
                "key_id": str(keys[i]),
                "drawing": [
                    [s[:, 0].tolist(), s[:, 1].tolist(), s[:, 2].astype(int).tolist()]
                    for s in strokes
                ],
            }
            buf.write(json_text(row, indent=None, separators=(",", ":")) + "\n")
        else:
            simple = simplify_drawing([s[:, :2] for s in strokes])
            drawing = json_text([[s[:, 0].tolist(), s[:, 1].tolist()] for s in simple], indent=None)
            writer.writerow((countries[i], drawing, keys[i], bool(recognized[i]), timestamp, word))
    return buf.getvalue().encode()


def _write_gzip_atomic(path: Path, parts: Iterable[bytes], compress: bool = True) -> Path:
    """Write to a temporary name, then rename: an interrupted run never leaves a half file."""
    with atomic_open(path, "wb") as raw:
        # No file name and mtime 0 in the gzip header, so equal content gives equal bytes.
        gz = partial(gzip.GzipFile, filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6)
        with gz() if compress else nullcontext(raw) as out:
            for part in parts:
                out.write(part)
    return path


def _chunks(n: int) -> list[tuple[int, int]]:
    return [(c, min(CHUNK, n - c * CHUNK)) for c in range(-(-n // CHUNK))]


def write_raw_ndjson(path: str | Path, word: str, n: int, seed: int = 0) -> Path:
    """Google's raw ndjson layout (`[[x...], [y...], [t...]]` strokes); gzip if `path` ends in .gz.

    Rows match [`generate`][quickdraw.data.synthetic.generate] with the same seed: same key_ids, and the simplified drawings are
    these strokes after [`simplify_drawing`][quickdraw.data.simplify.simplify_drawing].
    """
    path = Path(path)
    parts = (_chunk(word, seed, c, k, raw=True) for c, k in _chunks(n))
    return _write_gzip_atomic(path, parts, compress=path.suffix == ".gz")


def generate(
    out_dir: str | Path,
    per_class: int = 5000,
    classes: Sequence[str] = CLASSES,
    seed: int = 0,
    progress: bool = True,
    *,
    raw_ndjson: bool = False,
    workers: int | None = None,
    replace: bool = False,
) -> list[Path]:
    """Write `<word>.csv.gz` per class in Kaggle's train_simplified layout; returns the paths.

    `raw_ndjson` writes Google's raw `<word>.ndjson.gz` instead. Output depends only on
    `seed` and each class's own name, never on `workers` or on the other classes. The folder
    gets `GENERATED.json` (the files made, seed, drawings a class) last, once every file is whole:
    by it the converter records the store's origin as generated (so no model trained on it claims
    Quick, Draw! data) and [`quickdraw.data.sources`][quickdraw.data.sources] knows the folder is complete.

    Raises FileExistsError, before writing anything, for a file it would write over that the
    folder's marker does not list (someone else's data; `replace=True` writes over it, e.g. an
    interrupted run's files), and SettingError for an unknown class.
    """
    unknown = set(classes) - set(SHAPES)
    if unknown:
        raise SettingError(
            f"no synthetic class {sorted(unknown)}; choose from {', '.join(CLASSES)}"
        )
    if len({_class_code(w) for w in classes}) < len(set(classes)):
        raise SettingError("two class names share a key_id code; rename one")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_out_dir(
        out_dir, [f"{w}.ndjson.gz" if raw_ndjson else f"{w}.csv.gz" for w in classes], replace
    )
    workers = min(workers or os.cpu_count() or 1, len(classes) * len(_chunks(per_class)) or 1)
    pool: Executor | None = ProcessPoolExecutor(workers) if workers > 1 else None
    header = b"" if raw_ndjson else (",".join(CSV_HEADER) + "\n").encode()
    paths = []
    with tqdm(total=per_class * len(classes), unit="drawing", disable=not progress) as bar:
        try:
            # Submit everything up front; files are then written in order as their chunks finish.
            jobs = {
                w: [(k, _submit(pool, w, seed, c, k, raw_ndjson)) for c, k in _chunks(per_class)]
                for w in classes
            }
            for word, parts in jobs.items():
                name = f"{word}.ndjson.gz" if raw_ndjson else f"{word}.csv.gz"
                paths.append(_write_gzip_atomic(out_dir / name, _collect(header, parts, bar)))
        finally:
            if pool:
                pool.shutdown(cancel_futures=True)
    mark_generated(
        out_dir, [p.name for p in paths], seed=seed, per_class=per_class, classes=list(classes)
    )
    return paths


def _check_out_dir(out_dir: Path, names: list[str], replace: bool) -> None:
    """Refuse to write over files the generator did not make; name the other data files beside."""
    try:
        mine = listed(out_dir)
    except MarkerError:  # not the generator's: it lists nothing, and mark_generated replaces it
        mine = set()
    theirs = sorted(n for n in names if (out_dir / n).exists() and n not in mine)
    if theirs and not replace:
        raise FileExistsError(
            f"{out_dir} holds {', '.join(theirs[:5])}, not made by the generator (its {MARKER} does "
            "not list them); generating would write over them. Choose another folder, or replace "
            "them (replace=True), e.g. an interrupted run's files"
        )
    others = sorted(p.name for p in out_dir.iterdir() if p.name.lower().endswith((*SUFFIXES, ".zip"))
                    and p.name not in mine and p.name not in names and not artefact_kind(p.name))  # fmt: skip
    if others:
        log.warning("%s also holds %d data files the generator did not make (%s): a store converted "
                    "from the folder mixes them with the generated ones (origin 'mixed')", out_dir,
                    len(others), ", ".join(others[:5]))  # fmt: skip


def _submit(pool: Executor | None, *args: object) -> Callable[[], bytes]:
    """Start a chunk in the pool now, or (no pool) run it here once its bytes are asked for."""
    return pool.submit(_chunk, *args).result if pool else partial(_chunk, *args)


def _collect(
    header: bytes, parts: list[tuple[int, Callable[[], bytes]]], bar: tqdm
) -> Iterator[bytes]:
    yield header
    for rows, part in parts:
        yield part()
        bar.update(rows)
