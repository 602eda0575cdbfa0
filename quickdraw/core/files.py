"""Writing files that readers never see half-written, and the one Markdown-table writer.

Every file the project writes for others to read (manifests, receipts, metrics, submissions,
sweep summaries, checkpoints, shards) goes through [`atomic_open`][quickdraw.core.files.atomic_open] (or, for writers that need a
file name, [`atomic_path`][quickdraw.core.files.atomic_path]): it writes a hidden
temporary file beside the target (unique per call, so parallel writers of the same target never
share one), syncs it to disk and renames it over the target. A crash, a kill or a full disk
leaves the previous file intact, never a truncated one under the final name.

Running out of space while writing is one error, [`DiskFullError`][quickdraw.core.files.DiskFullError], naming the file: whether
the operating system said so (`ENOSPC`, `EDQUOT`, `EFBIG`) or a library wrapped it in its own
error (PyTorch's checkpoint writer raises `RuntimeError: ... unexpected pos`). JSON goes through
[`write_json`][quickdraw.core.files.write_json], which writes strict JSON (RFC 8259: no `NaN` or `Infinity`).
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from quickdraw.core.errors import QuickDrawError

_UMASK = os.umask(0)  # read once (it can only be read by setting it) and put back
os.umask(_UMASK)


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """`open(path, mode)` whose result appears under `path` only when the block succeeds.

    `mode` is `"w"` (text; `kwargs` go to `open`, e.g. `newline=""`) or `"wb"`.
    On any exception the temporary file is removed and `path` is left as it was.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode 'w' or 'wb', not {mode!r}")
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as f:
        yield f


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A new hidden file beside `path` for writers that take a file name rather than a file object
    (Parquet, ONNX): synced and renamed over `path` when the block succeeds, removed when it fails.

    Running out of space in the block or at the rename is a [`DiskFullError`][quickdraw.core.files.DiskFullError]
    naming `path`. Every temporary file the project writes is made and committed here.
    """
    tmp = _temporary_path(path)
    try:
        with reporting_full_disk(path):
            yield tmp
            _commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _temporary_path(path: str | os.PathLike) -> Path:
    """A new hidden file beside `path` (unique per call) to write `path`'s content into."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp's 0600 would leave the result unreadable to others
    os.close(fd)
    return Path(tmp)


def _commit(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Sync the finished temporary file `tmp` to disk and rename it over `path` (atomic)."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write `data` (text as UTF-8, or bytes) to `path` atomically; returns `path`."""
    with atomic_open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    return Path(path)


def copy_atomic(source: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Copy the file `source` to `path` through [`atomic_open`][quickdraw.core.files.atomic_open]; returns `path`."""
    with open(source, "rb") as src, atomic_open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return Path(path)


def write_figure(figure: Any, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Save a matplotlib `figure` to `path` (format from its suffix) through
    [`atomic_open`][quickdraw.core.files.atomic_open]; returns `path`."""
    with atomic_open(path, "wb") as f:
        figure.savefig(f, dpi=dpi, format=Path(path).suffix.lstrip("."))
    return Path(path)


# Out of space, over quota, file too large for its filesystem: the same advice for each.
OUT_OF_SPACE = frozenset({errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)})
# PyTorch's zip writer checks each write's position and raises these instead of the OSError (with
# a file object the OSError is the RuntimeError's __context__; with a path there is none).
_TORCH_WRITE_FAILED = ("unexpected pos", "PytorchStreamWriter failed writing file")


class DiskFullError(QuickDrawError, OSError):
    """No room to write `filename`; nothing was written under its name.

    Built as `DiskFullError(errno, strerror, filename)` (OSError's own arguments, so that it
    survives pickling from a worker process); [`reporting_full_disk`][quickdraw.core.files.reporting_full_disk] raises it.
    """

    def __str__(self) -> str:
        return (
            f"cannot write {self.filename}: {self.strerror}. Free some space on that disk, or "
            "choose another folder for the output; nothing was written under that name"
        )


def out_of_space(error: BaseException) -> bool:
    """Whether `error`, or an error it was raised from or while handling, is a write that found
    no room: an `OSError` with an errno of `OUT_OF_SPACE`, or PyTorch's failed write
    (unless an `OSError` in the chain names another cause, such as `EIO`, or the write was cut by
    Ctrl-C: PyTorch's writer turns the KeyboardInterrupt into the same failed write)."""
    chain = _chain(error)
    if any(isinstance(e, KeyboardInterrupt) for e in chain):
        return False
    codes = {e.errno for e in chain if isinstance(e, OSError) and e.errno is not None}
    if codes & OUT_OF_SPACE:
        return True
    torch_failed = any(
        isinstance(e, RuntimeError) and any(s in str(e) for s in _TORCH_WRITE_FAILED) for e in chain
    )
    return torch_failed and not codes


def _chain(error: BaseException | None) -> list[BaseException]:
    """`error` and the errors it was raised from or while handling, once each."""
    chain: list[BaseException] = []
    while error is not None and all(error is not e for e in chain):
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


class LogFile(logging.FileHandler):
    """A run's log file that a full disk silences instead of printing logging's "--- Logging
    error ---" traceback for every later line: the console still shows each line, and the command
    reports the full disk in one line where its own write fails. [`quiet_full_disk_echoes`][quickdraw.core.files.quiet_full_disk_echoes]
    makes Hydra's log file one."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802  (logging's name)
        error = sys.exc_info()[1]
        if error is None or not out_of_space(error):
            super().handleError(record)


def quiet_full_disk_echoes(logger: logging.Logger | None = None) -> None:
    """One line, not pages of tracebacks, where a full disk also stops writers the command does not
    call itself: every plain file handler of `logger` (the root logger: Hydra's `<task>.log`)
    becomes a [`LogFile`][quickdraw.core.files.LogFile] (it holds no state of its own, so it keeps its file and settings),
    and a background thread that finds no room (TensorBoard's event writer) logs one warning
    instead of "Exception in thread" and its traceback; the command's own writes report the rest."""
    for handler in (logger or logging.getLogger()).handlers:
        if type(handler) is logging.FileHandler:
            handler.__class__ = LogFile
    threading.excepthook = _thread_out_of_space


def _thread_out_of_space(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or not out_of_space(args.exc_value):
        threading.__excepthook__(args)
        return
    where = getattr(args.exc_value, "filename", None) or "its file"
    name = args.thread.name if args.thread else "?"
    logging.getLogger(__name__).warning(
        "a background writer (thread %s) could not write %s: the disk is full", name, where
    )


@contextmanager
def reporting_full_disk(path: str | os.PathLike) -> Iterator[None]:
    """Turn running out of space inside the block into [`DiskFullError`][quickdraw.core.files.DiskFullError] naming `path`."""
    try:
        yield
    except DiskFullError:
        raise
    except (OSError, RuntimeError) as e:
        interrupted = [i for i in _chain(e) if isinstance(i, KeyboardInterrupt)]
        if interrupted:  # Ctrl-C during the write (PyTorch's writer wraps it): an interruption
            raise interrupted[0] from None
        if not out_of_space(e):
            raise
        code = e.errno if isinstance(e, OSError) and e.errno in OUT_OF_SPACE else errno.ENOSPC
        raise DiskFullError(code, os.strerror(code), str(path)) from e


def strict_json(value: Any) -> Any:
    """`value` with every float that is not finite (NaN, ±inf) replaced by None (JSON `null`);
    numpy scalars become Python numbers. Dicts, lists and tuples are copied, others kept."""
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy or torch scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_text(
    value: Any,
    indent: int | None = 1,
    sort_keys: bool = False,
    separators: tuple[str, str] | None = None,
) -> str:
    """`value` as strict JSON text (RFC 8259): non-finite floats become `null`. The other
    arguments are `json.dumps`'s (`indent=None`: one line, such as an ndjson row)."""
    return json.dumps(
        strict_json(value),
        indent=indent,
        sort_keys=sort_keys,
        separators=separators,
        allow_nan=False,
    )


def write_json(path: str | os.PathLike, value: Any, sort_keys: bool = False) -> Path:
    """`value` as indented strict JSON (see [`json_text`][quickdraw.core.files.json_text]), written atomically; returns
    `path`. Every JSON file the project writes goes through here."""
    return write_atomic(path, json_text(value, sort_keys=sort_keys))


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 4) -> str:
    """A GitHub Markdown table; floats to `digits` decimals, everything else as `str`."""

    def cell(value: Any) -> str:
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"
