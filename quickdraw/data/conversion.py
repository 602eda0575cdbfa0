"""Conversion of Quick, Draw! inputs into a Parquet store: streaming, parallel per file, resumable.

Each input file is one unit of work
([`convert_source`][quickdraw.data.convert_file.convert_source]): its rows are validated, split
by hashing key_id and buffered per (split, class); full buffers become class-pure row groups ([`quickdraw.data.shards`][quickdraw.data.shards]). A file's shards
are written under temporary names and renamed when complete, and a receipt in `_sources/` marks
the file done ([`quickdraw.data.receipts`][quickdraw.data.receipts]); an interrupted run
therefore redoes only unfinished files (after deleting their stray shards), and a finished store
is left alone.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import shutil
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm.auto import tqdm

from quickdraw.core.files import write_json
from quickdraw.core.outputs import refuse_overwrite
from quickdraw.data.convert_file import ConvertSettings, convert_source
from quickdraw.data.duplicates import find_duplicates
from quickdraw.data.formats.base import BadRow, InputFile, QuickDrawFormatError
from quickdraw.data.listing import list_sources
from quickdraw.data.origin import combined_origin
from quickdraw.data.readers import iter_records
from quickdraw.data.receipts import (
    SOURCES_DIR,
    build_manifest,
    check_same_source,
    check_settings,
    load_receipts,
    remove_stray_shards,
    report,
    verify_shards,
)
from quickdraw.data.schema import Manifest

log = logging.getLogger(__name__)


_progress_queue = None


class _BarQueue:
    """The progress queue's interface over a tqdm bar, for in-process conversion."""

    def __init__(self, bar):
        self.bar = bar

    def put(self, n: int) -> None:
        self.bar.update(n)


def _init_worker(queue) -> None:
    global _progress_queue
    _progress_queue = queue


def _work(args) -> dict:
    source, store, class_index, settings = args
    try:
        receipt = convert_source(source, store, class_index, settings, _progress_queue)
        write_json(store / SOURCES_DIR / f"{source.id}.json", receipt)
    except BaseException:
        # Without its receipt a file's finished parts are converted again next time: remove them
        # now, with any temporary file, so that a full disk gets its space back.
        remove_stray_shards(store, source.id)
        raise
    return receipt


def infer_classes(sources: Sequence[InputFile], max_bytes: int) -> list[str]:
    """Class names from file names (Kaggle's and Google's one-file-per-class layouts), checked against
    each file's first row; files that hold other words are scanned for every word they contain."""
    words: set[str] = set()
    for source in sources:
        records = (r for r in iter_records(source, max_bytes) if not isinstance(r, BadRow))
        first = next(records, None)
        if first is None:
            continue
        if first[2] == source.stem:
            words.add(source.stem)
            continue
        log.info(
            "%s: first word %r differs from the file name; scanning all its words",
            source.name,
            first[2],
        )
        words.update(r[2] for r in [first, *records] if isinstance(r[2], str) and r[2])
    if not words:
        raise QuickDrawFormatError(
            "no class names found in the inputs (no file has a readable row with a word)"
        )
    return sorted(words)


def convert(
    source: str | Path,
    store: str | Path,
    settings: ConvertSettings | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    verify: bool = False,
    progress: bool = True,
) -> Manifest:
    """Convert `source` (zip, file or folder) into the Parquet store `store`; returns its manifest."""
    settings = settings or ConvertSettings()
    store = Path(store)
    # Before overwrite=true deletes the store: it must not be, hold or lie inside the source.
    refuse_overwrite({}, {"source": source}, "Convert into a new folder.", {"store": store})
    if overwrite and store.exists():
        shutil.rmtree(store)
    listing = list_sources(source)  # OS artefacts (._*, .DS_Store) skipped and counted
    sources = listing.sources
    # Before any work: a marker that is not the generator's stops the conversion here.
    origin = combined_origin(s.origin for s in sources) or ""
    if not settings.classes:
        settings.classes = infer_classes(sources, settings.max_bytes)
    settings.classes = sorted(set(settings.classes))
    check_settings(store, settings)
    check_same_source(store, sources)
    if verify:
        verify_shards(store, sources)
    receipts = load_receipts(store, sources)
    todo = [s for s in sources if s.id not in receipts]
    manifest_path = store / "manifest.json"
    if not todo and manifest_path.exists():
        log.info("%s is up to date (%d input files already converted)", store, len(sources))
        manifest = Manifest.load(store)
        if not manifest.origin:  # converted before manifests recorded it: add it, nothing else
            manifest.origin = origin
            manifest.save(store)
        if manifest.duplicates.get("policy") != settings.duplicates:
            # Built before duplicates were looked for, or drop <-> error (the same shards).
            found = find_duplicates(store, sources, receipts, settings.classes, settings.duplicates)
            manifest = build_manifest(sources, receipts, settings, manifest.origin, found)
            manifest.source = _resolved(source)
            manifest.skipped_files = listing.skipped_counts()
            manifest.save(store)
        return manifest
    for s in todo:
        remove_stray_shards(store, s.id)
    class_index = {c: i for i, c in enumerate(settings.classes)}
    t0 = time.perf_counter()
    jobs = [(s, store, class_index, settings) for s in todo]
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    bar = tqdm(
        total=None,
        unit=" rows",
        unit_scale=True,
        desc=f"convert {len(todo)} files",
        disable=not progress,
        mininterval=1.0,
    )
    try:
        if n_workers == 1:
            _init_worker(_BarQueue(bar))
            for job in jobs:
                receipts[job[0].id] = _work(job)
                bar.set_postfix(files=f"{len(receipts)}/{len(sources)}", refresh=False)
        else:
            _run_parallel(jobs, n_workers, receipts, bar, len(sources))
    finally:
        bar.close()
    found = find_duplicates(store, sources, receipts, settings.classes, settings.duplicates)
    manifest = build_manifest(sources, receipts, settings, origin, found)
    manifest.source = _resolved(source)  # what training checks the store against at each start
    manifest.skipped_files = listing.skipped_counts()
    manifest.save(store)
    report(manifest, receipts, time.perf_counter() - t0)
    return manifest


def _resolved(source: str | Path) -> str:
    return str(Path(source).expanduser().resolve())


def _run_parallel(jobs, n_workers: int, receipts: dict, bar, n_sources: int) -> None:
    # A fork server preloading only this module: workers start clean (no torch threads or locks inherited)
    # and fast (spawn would re-import the caller's __main__, e.g. all of Lightning for quickdraw.train).
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
    else:
        ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    stop = threading.Event()

    def pump() -> None:
        while not stop.is_set() or not queue.empty():
            try:
                bar.update(queue.get(timeout=0.2))
            except Exception:  # queue.Empty; the pool may also have gone away
                continue

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    try:
        with ProcessPoolExecutor(
            n_workers, mp_context=ctx, initializer=_init_worker, initargs=(queue,)
        ) as pool:
            try:
                for receipt in pool.map(_work, jobs):
                    receipts[receipt["id"]] = receipt
                    bar.set_postfix(files=f"{len(receipts)}/{n_sources}", refresh=False)
            except BaseException:
                # One failed file (a full disk) stops the others not yet started: one error,
                # not one per file.
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    finally:
        stop.set()
        thread.join()
