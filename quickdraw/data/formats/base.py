"""What every reader of a Quick, Draw! layout builds on: the input file, its bytes, and what a row becomes.

[`InputFile`][quickdraw.data.formats.base.InputFile] is one file on disk or one member of a zip archive; [`open_bytes`][quickdraw.data.formats.base.open_bytes] gives its
decompressed bytes, stopped at `max_bytes`. A reader yields `Record` tuples, or a
[`BadRow`][quickdraw.data.formats.base.BadRow] for a row it counts and skips; a file that is not Quick, Draw! data at all raises
[`QuickDrawFormatError`][quickdraw.data.formats.base.QuickDrawFormatError]. The text layouts (CSV, ndjson) are read by
[`quickdraw.data.readers`][quickdraw.data.readers]; the binary layouts by [`quickdraw.data.formats.binary`][quickdraw.data.formats.binary] and
[`quickdraw.data.formats.sketchrnn`][quickdraw.data.formats.sketchrnn], which hand over whole drawings as [`ParsedDrawing`][quickdraw.data.formats.base.ParsedDrawing].
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from quickdraw.core.errors import InputError, QuickDrawError
from quickdraw.data.origin import GENERATED, MARKER, QUICKDRAW, generated_files
from quickdraw.data.text import excerpt

SUFFIXES = (".csv", ".csv.gz", ".ndjson", ".ndjson.gz", ".bin", ".bin.gz", ".npz")
INT64_MAX = 2**63 - 1
# A record before validation: (line, key_id, word, countrycode, recognized, timestamp, drawing).
Record = tuple


class QuickDrawFormatError(InputError):
    """The file as a whole is not Quick, Draw! data (or is too large to be): conversion stops."""


class BadRow(QuickDrawError):
    """One row is unusable; it is counted under `reason` and skipped."""

    def __init__(self, reason: str, detail: str = "", line: int | None = None):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.line = line


class ParsedDrawing(NamedTuple):
    """One drawing already in the store's frame, as a record's `drawing` field.

    `points`: (P, 2) uint8, x and y in the 0-255 frame; `lengths`: points per stroke, each >= 1,
    summing to P; `split`: the file's own split (`train`, `val` or `test`) where it has one,
    which `settings.keep_source_split=true` keeps instead of hashing key_id.
    """

    points: np.ndarray
    lengths: list[int]
    split: str | None = None


@dataclass(frozen=True)
class InputFile:
    """One input file: a path on disk, or a member of a zip archive. `within`: the folder of
    `path` under the folder that was listed ("" at its top), so that `2019/cat.csv` and
    `2020/cat.csv` of one source are two files with two ids."""

    path: Path
    member: str | None = None
    within: str = ""

    @property
    def name(self) -> str:
        return f"{self.path}!{self.member}" if self.member else str(self.path)

    @property
    def filename(self) -> str:
        return (
            _member_name(self.path, self.member).rsplit("/", 1)[-1]
            if self.member
            else self.path.name
        )

    @property
    def kind(self) -> str:
        low = self.filename.lower()
        if low.endswith((".bin", ".bin.gz")):
            return "binary"
        if low.endswith(".npz"):
            return "sketchrnn"
        return "ndjson" if ".ndjson" in low else "csv"

    @property
    def origin(self) -> str:
        """`GENERATED` when the `GENERATED.json` in the file's folder (on disk, the link's or
        its target's; in the archive for a zip member) lists it, else `QUICKDRAW`
        ([`quickdraw.data.origin`][quickdraw.data.origin]). Raises MarkerError for a marker that is not the
        generator's."""
        if self.member is None:
            for path in dict.fromkeys((self.path, self.path.resolve())):
                marker = path.parent / MARKER
                if marker.is_file() and path.name in generated_files(
                    marker.read_bytes(), str(marker)
                ):
                    return GENERATED
            return QUICKDRAW
        folder = self.member.rpartition("/")[0]
        member = f"{folder}/{MARKER}" if folder else MARKER
        archive = _zipfile(self.path)
        if member not in archive.NameToInfo:
            return QUICKDRAW
        listed = generated_files(archive.read(member), f"{self.path}!{member}")
        return GENERATED if self.filename in listed else QUICKDRAW

    @property
    def gzipped(self) -> bool:
        return self.filename.lower().endswith(".gz")

    @property
    def stem(self) -> str:
        """The file name without its extensions: the class name in Kaggle's and Google's layouts."""
        name = self.filename
        for suffix in SUFFIXES:
            if name.lower().endswith(suffix):
                return name[: -len(suffix)]
        return name

    @property
    def class_name(self) -> str:
        """[`stem`][quickdraw.data.formats.base.InputFile.stem] as the class of a one-class-per-file layout (`.bin`, `.npz`); a file
        name whose bytes are not UTF-8 (Linux keeps them as surrogates) is refused, never stored."""
        stem = self.stem
        if any("\udc80" <= c <= "\udcff" for c in stem):
            raw = stem.encode("utf-8", "surrogateescape")
            raise QuickDrawFormatError(
                f"{excerpt(self.name)}: the file name is not UTF-8 ({excerpt(raw)}; as Windows-1252 "
                f"it reads {excerpt(raw.decode('cp1252', 'replace'))}) and it names the class: "
                "rename the file"
            )
        return stem

    @property
    def size(self) -> int:
        """Bytes on disk (compressed size for zip members)."""
        if self.member is None:
            return self.path.stat().st_size
        return self.member_info().compress_size

    def member_info(self) -> zipfile.ZipInfo:
        """The zip member's directory entry, from the archive as it is now (see `_zipfile`)."""
        return _zipfile(self.path).getinfo(self.member)

    @property
    def id(self) -> str:
        """A file-name-safe, collision-free id (member names may hold '../' or unicode): the same
        for the same file when the source folder moves; top-level files keep the ids of stores
        converted before `within` was part of it."""
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", self.stem).strip("._")[:48] or "source"
        where = f"{self.within}/{self.path.name}" if self.within else self.path.name
        digest = hashlib.sha1(f"{where}!{self.member}".encode()).hexdigest()[:10]
        return f"{safe}-{digest}"


def _zipfile(path: Path) -> zipfile.ZipFile:
    """One open archive per process and version of the file: Kaggle's zip has 340 members, and
    each open re-reads its directory; an archive replaced since is opened anew (a stale directory
    would read the new file's bytes at the old offsets)."""
    st = path.stat()
    return _open_zipfile(path, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _open_zipfile(path: Path, size: int, mtime_ns: int) -> zipfile.ZipFile:
    return zipfile.ZipFile(path)


def _member_name(path: Path, member: str) -> str:
    """A zip member's name as its maker wrote it. Names without the UTF-8 flag (bit 11) are cp437
    by the zip spec, as Python reads them, but macOS's Archive Utility and older Info-ZIP write
    UTF-8 without setting it (`café.csv` read as `cafÃ©.csv`): such names are read as UTF-8
    when their bytes are UTF-8, which cp437 names with accents practically never are."""
    try:
        if _zipfile(path).getinfo(member).flag_bits & 0x800:
            return member
        return member.encode("cp437").decode("utf-8")
    except (KeyError, OSError, zipfile.BadZipFile, UnicodeError):
        return member


class _LimitedReader(io.RawIOBase):
    """Counts decompressed bytes and stops a zip/gzip bomb at `limit`."""

    def __init__(self, raw, limit: int, name: str):
        self.raw, self.limit, self.name, self.count = raw, limit, name, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = self.raw.read(len(buffer))
        except (OSError, EOFError, zipfile.BadZipFile) as e:
            raise QuickDrawFormatError(f"{self.name}: cannot decompress ({e})") from e
        self.count += len(data)
        if self.count > self.limit:
            raise QuickDrawFormatError(
                f"{self.name}: more than {self.limit:,} bytes once decompressed (max_bytes); "
                "a damaged file or a decompression bomb. Raise max_bytes if the file is genuine."
            )
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.raw.close()
        super().close()


def open_bytes(source: InputFile, max_bytes: int) -> io.BufferedReader:
    """The decompressed bytes of a source (gzip checked by its magic), stopped at `max_bytes`."""
    # The returned reader owns these handles and closes them with itself.
    try:
        if source.member is not None:
            raw = _zipfile(source.path).open(source.member)
        else:
            raw = open(source.path, "rb")  # noqa: SIM115
    except (zipfile.BadZipFile, KeyError) as e:
        raise QuickDrawFormatError(f"{source.name}: cannot open ({e})") from e
    if source.gzipped:
        if raw.peek(2)[:2] not in (b"", b"\x1f\x8b"):
            raw.close()
            raise QuickDrawFormatError(f"{source.name}: named .gz but is not gzip data")
        raw = gzip.GzipFile(fileobj=raw, mode="rb")
    return io.BufferedReader(_LimitedReader(raw, max_bytes, source.name), buffer_size=1 << 20)
