"""Fetch the Quick, Draw! data: Google's per-category ndjson, binary or sketch-rnn files (resumable), or Kaggle's zip."""

from __future__ import annotations

import argparse
import codecs
import difflib
import http.client
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TypeVar
from urllib.error import HTTPError
from urllib.parse import quote, urljoin
from urllib.request import Request, urlopen

from tqdm import tqdm

from quickdraw.core.errors import MissingPathError, QuickDrawError

DEFAULT_BASE_URL = "https://storage.googleapis.com/quickdraw_dataset/full"
# Each kind's file, relative to the bucket's full/ folder: sketch-rnn's files lie beside it.
KIND_PATHS = {
    "simplified": "simplified/{}.ndjson",
    "raw": "raw/{}.ndjson",
    "binary": "binary/{}.bin",
    "sketchrnn": "../sketchrnn/{}.npz",
}
KINDS = tuple(KIND_PATHS)
KAGGLE_COMPETITION = "quickdraw-doodle-recognition"
KAGGLE_FILE = "train_simplified.zip"
CHUNK = 1 << 16
# Transient server states worth waiting out; any other HTTP error will not fix itself.
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
T = TypeVar("T")


class IncompleteDownload(QuickDrawError):
    """The body ended before the advertised length: resume on the next attempt."""


class KaggleError(QuickDrawError, RuntimeError):
    """The Kaggle CLI is missing or failed; the message says what to do."""


@dataclass
class Result:
    category: str
    url: str
    path: Path
    status: str  # "downloaded", "skipped" or "failed"
    nbytes: int = 0  # bytes received in this run
    error: str = ""


class Progress:
    """One tqdm byte bar shared by the worker threads, which also stop at it after Ctrl-C."""

    def __init__(self, enabled: bool = True) -> None:
        self._bar = tqdm(total=0, unit="B", unit_scale=True, unit_divisor=1024, disable=not enabled)
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def grow(self, nbytes: int) -> None:
        with self._lock:
            self._bar.total += nbytes
            self._bar.refresh()

    def advance(self, nbytes: int) -> None:
        # Negative when a server ignores Range and the partial file is thrown away.
        if self._stop.is_set():
            raise KeyboardInterrupt  # between chunks, so every .part stays a valid prefix
        with self._lock:
            self._bar.update(nbytes)

    def stop(self) -> None:
        self._stop.set()

    def write(self, message: str) -> None:
        self._bar.write(message, file=sys.stderr)

    def close(self) -> None:
        self._bar.close()


def load_categories(path: str | Path | None = None) -> list[str]:
    """Category names, one a line: from `path`, or Google's 345 shipped with the package."""
    source = Path(path) if path else files("quickdraw") / "resources" / "categories.txt"
    if path and not source.is_file():
        raise MissingPathError(f"--categories-file {path}: no such file")
    lines = (line.strip() for line in source.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def category_url(category: str, kind: str = "simplified", base_url: str = DEFAULT_BASE_URL) -> str:
    return urljoin(base_url.rstrip("/") + "/", KIND_PATHS[kind].format(quote(category)))


def category_file(category: str, kind: str = "simplified") -> str:
    """The downloaded file's name: the category, which the converter reads as the class."""
    return KIND_PATHS[kind].format(category).rsplit("/", 1)[-1]


def _with_retries(call: Callable[[], T], retries: int, backoff: float) -> T:
    for attempt in range(retries + 1):
        try:
            return call()
        except HTTPError as err:
            if err.code not in RETRY_STATUS or attempt == retries:
                raise
        except (OSError, http.client.HTTPException, IncompleteDownload):
            # Dropped connections, resets and socket timeouts; HTTPError is caught above.
            if attempt == retries:
                raise
        time.sleep(min(backoff * 2**attempt, 60.0))
    raise AssertionError("unreachable")


def remote_size(url: str, timeout: float) -> int | None:
    """Content-Length from a HEAD request; None when the server does not say."""
    with urlopen(Request(url, method="HEAD"), timeout=timeout) as resp:
        length = resp.headers.get("Content-Length")
    return int(length) if length is not None else None


def _restart(part: Path, progress: Progress) -> None:
    progress.advance(-part.stat().st_size)
    part.unlink()


def _get_into(url: str, part: Path, size: int | None, timeout: float, progress: Progress) -> None:
    """One GET that appends to `part` from its current size; raises unless it ends complete."""
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        _restart(part, progress)
        offset = 0
    if offset and offset == size:
        return
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        resp = urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as err:
        # 416: nothing lies past our offset, so the part is complete unless we know better.
        if err.code == 416 and offset and size is None:
            return
        if err.code == 416:
            _restart(part, progress)
            raise IncompleteDownload("server refused the resume range; restarting") from err
        raise
    with resp:
        range_start = resp.headers.get("Content-Range", "bytes 0-").split()[1].split("-")[0]
        if resp.status == 206 and int(range_start) != offset:
            _restart(part, progress)
            raise IncompleteDownload(f"asked for bytes {offset}-, got {range_start}-; restarting")
        if resp.status != 206 and offset:
            # The server sent the whole file (Range ignored): appending would corrupt it.
            _restart(part, progress)
            offset = 0
        length = resp.headers.get("Content-Length")
        expected = size if size is not None else (offset + int(length) if length else None)
        with open(part, "ab" if offset else "wb") as out:
            # read1 hands over what has arrived, so a stall loses nothing already received.
            while chunk := resp.read1(CHUNK):
                out.write(chunk)
                progress.advance(len(chunk))
    got = part.stat().st_size
    if expected is not None and got != expected:
        raise IncompleteDownload(f"got {got} of {expected} bytes")


def fetch(
    url: str,
    dest: Path,
    *,
    retries: int = 5,
    timeout: float = 60.0,
    backoff: float = 1.0,
    progress: Progress | None = None,
) -> tuple[str, int]:
    """Download `url` to `dest` via `dest.part`, resuming it; return (status, bytes received)."""
    progress = progress or Progress(enabled=False)
    size = _with_retries(lambda: remote_size(url, timeout), retries, backoff)
    if dest.exists() and (size is None or dest.stat().st_size == size):
        return "skipped", 0
    part = dest.with_name(dest.name + ".part")
    start = part.stat().st_size if part.exists() else 0
    progress.grow(size or 0)
    progress.advance(start)
    _with_retries(lambda: _get_into(url, part, size, timeout, progress), retries, backoff)
    final = part.stat().st_size
    part.replace(dest)
    return "downloaded", max(final - start, 0)


def _describe(err: BaseException, category: str, url: str) -> str:
    # Buckets without public listing answer 403 rather than 404 for a missing object.
    if isinstance(err, HTTPError) and err.code in (403, 404):
        close = difflib.get_close_matches(category, load_categories(), n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        return f"category {category!r} not found (HTTP {err.code}) at {url}.{hint}"
    return f"category {category!r} failed at {url}: {err!r}"


def download_all(
    categories: Iterable[str],
    out: str | Path,
    *,
    kind: str = "simplified",
    base_url: str = DEFAULT_BASE_URL,
    workers: int = 4,
    retries: int = 5,
    timeout: float = 60.0,
    backoff: float = 1.0,
    progress: bool = True,
) -> list[Result]:
    """Download `<out>/<category>.<ndjson|bin|npz>` for each category in parallel; failures are reported, not raised."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bar = Progress(enabled=progress)

    def one(category: str) -> Result:
        url = category_url(category, kind, base_url)
        dest = out / category_file(category, kind)
        try:
            status, nbytes = fetch(
                url, dest, retries=retries, timeout=timeout, backoff=backoff, progress=bar
            )
        except Exception as err:  # one bad category must not stop the others
            message = _describe(err, category, url)
            bar.write(f"error: {message}")
            return Result(category, url, dest, "failed", error=message)
        return Result(category, url, dest, status, nbytes)

    pool = ThreadPoolExecutor(max_workers=max(workers, 1))
    try:
        return list(pool.map(one, categories))
    except KeyboardInterrupt:
        bar.stop()  # otherwise the pool would finish every queued file before exiting
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()


def summarize(results: list[Result]) -> str:
    counts = {s: sum(r.status == s for r in results) for s in ("downloaded", "skipped", "failed")}
    received = tqdm.format_sizeof(sum(r.nbytes for r in results), "B", 1024)
    lines = [", ".join(f"{n} {s}" for s, n in counts.items()) + f"; {received} received"]
    lines += [f"  failed: {r.error}" for r in results if r.status == "failed"]
    return "\n".join(lines)


def _tee_stderr(proc: subprocess.Popen[bytes], keep: int = 4000) -> str:
    """Show the CLI's stderr live (its progress bar) and keep the tail for the error message."""
    assert proc.stderr is not None
    # read1 returns what is there now: tqdm's carriage-return updates never end a line.
    decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
    tail = ""
    while chunk := proc.stderr.read1(4096):
        text = decode(chunk)
        sys.stderr.write(text)
        sys.stderr.flush()
        tail = (tail + text)[-keep:]
    return tail.strip()


def kaggle_download(out: str | Path, file: str = KAGGLE_FILE) -> Path:
    """Run the official Kaggle CLI to fetch one competition file into `out`; return its path."""
    exe = shutil.which("kaggle")
    if exe is None:
        raise KaggleError(
            "the `kaggle` command was not found on PATH. Install it with `pip install kaggle`, "
            "put your API token in ~/.kaggle/kaggle.json (chmod 600; create it under Settings > "
            "API on kaggle.com) or set KAGGLE_USERNAME and KAGGLE_KEY, and accept the rules at "
            f"https://www.kaggle.com/competitions/{KAGGLE_COMPETITION}/rules"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cmd = [exe, "competitions", "download", "-c", KAGGLE_COMPETITION, "-f", file, "-p", str(out)]
    with subprocess.Popen(cmd, stderr=subprocess.PIPE) as proc:
        stderr = _tee_stderr(proc)
    if proc.returncode != 0:
        raise KaggleError(
            f"`{' '.join(cmd)}` exited with status {proc.returncode}: {stderr or '(no stderr)'}\n"
            "A 403 usually means the competition rules have not been accepted on the website; "
            "a 401 means the credentials are missing or wrong."
        )
    target = out / file
    if not target.exists():
        found = ", ".join(sorted(p.name for p in out.iterdir())) or "nothing"
        raise KaggleError(f"the Kaggle CLI succeeded but {target} is missing (found: {found})")
    return target


HELP_EPILOG = f"""\
sources:
  google  one file per category from Google's public bucket (345 categories): --kind
          simplified or raw (<word>.ndjson), binary (<word>.bin, the smallest) or sketchrnn
          (<word>.npz: 70,000/2,500/2,500 stroke-3 drawings in train/valid/test, from the
          bucket's sketchrnn/ folder beside full/). Files are fetched into <word>.<ext>.part
          and renamed once their size matches the server's, so an interrupted run is simply
          started again: complete files are skipped and partial ones resume with an HTTP
          Range request. A category that does not exist (HTTP 404) is reported and the
          others still download; the exit status is 1 if anything failed.
  kaggle  train_simplified.zip of the Kaggle competition (340 categories, one CSV each) via
          the official CLI (`pip install kaggle`; credentials in ~/.kaggle/kaggle.json or
          KAGGLE_USERNAME/KAGGLE_KEY; accept the competition rules on kaggle.com first).
          The zip need NOT be unpacked: `python -m quickdraw.convert
          source=OUT/{KAGGLE_FILE} store=DIR` reads it directly.

examples:
  python -m quickdraw.download --categories "cat,The Eiffel Tower"
  python -m quickdraw.download --kind raw --out /data/qd/raw --workers 8
  python -m quickdraw.download --kind binary --categories cat,dog
  python -m quickdraw.download --kind sketchrnn --categories cat --out data/sketchrnn
  python -m quickdraw.download --categories-file my_words.txt --retries 10
  python -m quickdraw.download --source kaggle --out data/quickdraw
"""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep the epilog's layout and show real defaults (not None/False) next to each option."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False):
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m quickdraw.download",
        description="Download the Quick, Draw! data set (Google's ndjson, binary or sketch-rnn "
        "files, or Kaggle's zip).",
        epilog=HELP_EPILOG,
        formatter_class=_HelpFormatter,
    )
    add = parser.add_argument
    add("--source", choices=("google", "kaggle"), default="google", help="where to download from")
    add("--out", type=Path, metavar="DIR", help="target folder (default: data/quickdraw/<kind> "
        "for google, data/quickdraw for kaggle)")  # fmt: skip
    add("--kind", choices=KINDS, default="simplified", help="google: drawing format")
    pick = parser.add_mutually_exclusive_group()
    pick.add_argument(
        "--categories", metavar="A,B", help="google: comma-separated names (default: all 345)"
    )
    pick.add_argument(
        "--categories-file", type=Path, metavar="FILE", help="google: one name a line"
    )
    add(
        "--base-url",
        default=DEFAULT_BASE_URL,
        metavar="URL",
        help="google: the bucket's full/ folder",
    )
    add("--workers", type=int, default=4, metavar="N", help="google: parallel downloads")
    add("--retries", type=int, default=5, metavar="N", help="google: retries per file after a "
        "dropped connection, timeout or 5xx; each resumes where the last stopped")  # fmt: skip
    add(
        "--backoff",
        type=float,
        default=1.0,
        metavar="S",
        help="google: first retry delay, doubled each time",
    )
    add("--timeout", type=float, default=60.0, metavar="S", help="socket timeout in seconds")
    add("--no-progress", action="store_true", help="hide the progress bar")
    add("--kaggle-file", default=KAGGLE_FILE, metavar="NAME", help="kaggle: competition file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.source == "kaggle":
        try:
            path = kaggle_download(args.out or Path("data/quickdraw"), args.kaggle_file)
        except KaggleError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(f"saved {path}; convert with: python -m quickdraw.convert source={path} store=DIR")
        return 0
    if args.categories:
        categories = [c.strip() for c in args.categories.split(",") if c.strip()]
    else:
        categories = load_categories(args.categories_file)
    results = download_all(
        categories,
        args.out or Path("data/quickdraw") / args.kind,
        kind=args.kind,
        base_url=args.base_url,
        workers=args.workers,
        retries=args.retries,
        timeout=args.timeout,
        backoff=args.backoff,
        progress=not args.no_progress,
    )
    print(summarize(results))
    return 1 if any(r.status == "failed" for r in results) else 0
