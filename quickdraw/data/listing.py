"""The input files a source path holds: a zip, an input file, or a folder of them at any depth,
with the operating-system artefacts skipped on the way (`__MACOSX/`, `._*`, `.DS_Store`...).

The one listing of input files, for the converter, evaluate and predict;
[`quickdraw.data.readers`][quickdraw.data.readers] then streams each file's rows.
"""

from __future__ import annotations

import logging
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from quickdraw.core.errors import MissingPathError
from quickdraw.data.artefacts import artefact_in_path, artefact_kind
from quickdraw.data.formats.base import SUFFIXES, InputFile, QuickDrawFormatError

log = logging.getLogger(__name__)


@dataclass
class Listing:
    """What a source path holds: its input files, and the operating-system artefacts skipped
    ([`quickdraw.data.artefacts`][quickdraw.data.artefacts]; kind -> the paths skipped, a hidden folder counted once)."""

    sources: list[InputFile] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, kind: str, where: str) -> None:
        self.skipped.setdefault(kind, []).append(where)

    def add(self, other: Listing) -> None:
        self.sources += other.sources
        for kind, names in other.skipped.items():
            self.skipped.setdefault(kind, []).extend(names)

    def skipped_counts(self) -> dict[str, int]:
        """Kind -> count: what the manifest records as `skipped_files`."""
        return {kind: len(names) for kind, names in sorted(self.skipped.items())}

    def log(self, path: Path) -> None:
        if self.skipped:
            first = [n for names in self.skipped.values() for n in names][:3]
            log.info(
                "%s: skipped %d operating-system files (%s), e.g. %s",
                path,
                sum(map(len, self.skipped.values())),
                ", ".join(f"{k}: {v}" for k, v in self.skipped_counts().items()),
                ", ".join(first),
            )


def discover_sources(path: str | Path) -> list[InputFile]:
    """All inputs under `path`: a zip, a CSV/ndjson file (gzip or not), or a folder of them
    ([`list_sources`][quickdraw.data.listing.list_sources] without the artefacts it skipped)."""
    return list_sources(path).sources


def list_sources(path: str | Path) -> Listing:
    """The inputs under `path` (a zip, an input file, or a folder of them, zips included, at any
    depth) and the operating-system artefacts skipped on the way (`__MACOSX/`, `._*`,
    `.DS_Store`, hidden files and folders...), logged. The one listing of input files, for the
    converter, evaluate and predict. A path named directly is read even if it looks like an artefact.
    """
    path = Path(path)
    if not path.exists():
        near = sorted(p.name for p in path.parent.iterdir()) if path.parent.is_dir() else []
        raise MissingPathError(
            f"source {path} does not exist"
            + (f"; {path.parent} holds: {', '.join(near[:20])}" if near else "")
        )
    if path.is_dir():
        listing = _list_folder(path)
    elif path.suffix.lower() == ".zip":
        listing = _list_zip(path)
    elif not _is_input(path.name):
        raise QuickDrawFormatError(
            f"{path}: unsupported file type (expected {', '.join(SUFFIXES)} or .zip)"
        )
    else:
        listing = Listing([InputFile(path)])
    listing.log(path)
    return listing


def _list_folder(root: Path) -> Listing:
    listing, files = Listing(), []
    # os.walk, not rglob: skipped folders (.git, __MACOSX) are not even descended into.
    for folder, dirs, names in os.walk(root):
        here = Path(folder)
        for d in sorted(dirs):
            kind = artefact_kind(d, folder=True)
            if kind:
                dirs.remove(d)
                listing.skip(kind, f"{(here / d).relative_to(root)}/")
        for name in names:
            kind = artefact_kind(name)
            if kind:
                listing.skip(kind, str((here / name).relative_to(root)))
            elif _is_input(name, allow_zip=True) and (here / name).is_file():
                files.append(here / name)
    for file in sorted(files):
        within = "" if file.parent == root else file.parent.relative_to(root).as_posix()
        listing.add(
            _list_zip(file, within)
            if file.suffix.lower() == ".zip"
            else Listing([InputFile(file, within=within)])
        )
    if not listing.sources:
        raise QuickDrawFormatError(
            f"{root} holds no {', '.join(SUFFIXES)} or .zip files{_skipped_note(listing)}"
        )
    return listing


def _list_zip(path: Path, within: str = "") -> Listing:
    listing = Listing()
    try:
        with zipfile.ZipFile(path) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
    except zipfile.BadZipFile as e:
        raise QuickDrawFormatError(f"{path} is not a valid zip archive ({e})") from e
    for info in sorted(infos, key=lambda i: i.filename):
        kind = artefact_in_path(info.filename)
        if kind:
            listing.skip(kind, f"{path.name}!{info.filename}")
        elif _is_input(info.filename):
            listing.sources.append(InputFile(path, info.filename, within))
        elif info.filename.lower().endswith(".zip"):  # its drawings would be silently left out
            raise QuickDrawFormatError(
                f"{path} holds the zip archive {info.filename!r}, and a zip inside a zip is not "
                f"read: extract {path.name} into a folder and use that folder as the source "
                "(zips in a folder are read)"
            )
    if not listing.sources:
        raise QuickDrawFormatError(
            f"{path} contains no {', '.join(SUFFIXES)} members{_skipped_note(listing)}"
        )
    return listing


def _skipped_note(listing: Listing) -> str:
    n = sum(map(len, listing.skipped.values()))
    return f" (skipped {n} operating-system files: {listing.skipped_counts()})" if n else ""


def _is_input(name: str, allow_zip: bool = False) -> bool:
    low = name.lower()
    return low.endswith(SUFFIXES) or (allow_zip and low.endswith(".zip"))
