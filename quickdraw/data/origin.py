"""Where drawings come from: Google's Quick, Draw! data, the project's generated doodles, or both.

Quick, Draw! data is Google's, released under CC BY 4.0: a model or page published from it must
credit it. The generated doodles ([`quickdraw.data.synthetic`][quickdraw.data.synthetic]) are not Quick, Draw! data at
all, and a model trained on them must not claim to be. So the origin travels with the data: the
generator lists the files it made in `GENERATED.json` beside them; the converter records the
store's origin in its manifest (`Manifest.origin`); training keeps it in the checkpoint
(`data_origin`); the export writes it to `model.json` and the page's credit line follows it.
Any file the marker does not list is taken for Google's data (the converter reads the Quick, Draw!
formats), so a mix of the two is `MIXED` and still credits Google.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

from quickdraw.core.errors import QuickDrawError
from quickdraw.core.files import write_json

log = logging.getLogger(__name__)

QUICKDRAW, GENERATED, MIXED = "quickdraw", "generated", "mixed"
# The recorded values; "" (a manifest) or None (a checkpoint): not recorded (older data).
ORIGINS = (QUICKDRAW, GENERATED, MIXED)
MARKER = "GENERATED.json"
GENERATOR = "quickdraw.data.synthetic"


class MarkerError(QuickDrawError, ValueError):
    """A `GENERATED.json` that is not the generator's: the message names it and the fix."""


def combined_origin(origins: Iterable[str | None]) -> str | None:
    """One origin from several (a store's files, an ensemble's members): theirs when they agree,
    `MIXED` when not; None when any is not recorded (the whole is then unknown) or none is
    given."""
    found = list(origins)
    if not found or not all(found):
        return None
    kinds = set(found)
    return kinds.pop() if len(kinds) == 1 else MIXED


def generated_files(marker: bytes, where: str) -> set[str]:
    """The file names a `GENERATED.json` lists (its bytes; `where` names it in errors).

    Raises MarkerError for anything but the generator's marker: a JSON object with
    `"generator": "quickdraw.data.synthetic"` and `"files"`, a list of names.
    """
    try:
        data = json.loads(marker)
        if not isinstance(data, dict) or data.get("generator") != GENERATOR:
            raise TypeError(f'no "generator": "{GENERATOR}"')
        files = data["files"]
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise TypeError("'files' is not a list of names")
    except (ValueError, KeyError, TypeError) as e:
        raise MarkerError(
            f"{where} is not {GENERATOR}'s marker ({type(e).__name__}: {e}); it lists the files the "
            "generator made, so that their store is not credited as Quick, Draw! data. Delete it if "
            "the folder holds Google's files only, or delete the folder and let training generate it "
            "again (data.synthetic_per_class)"
        ) from e
    return set(files)


def listed(folder: Path) -> set[str]:
    """The files `folder`'s marker lists (none without a marker). Raises MarkerError."""
    path = folder / MARKER
    return generated_files(path.read_bytes(), str(path)) if path.is_file() else set()


def mark_generated(folder: Path, made: Iterable[str], **how: object) -> None:
    """Write `folder/GENERATED.json` listing `made` with the files an earlier valid marker
    there listed (`how`: the generator's settings, for people). Write it last: a folder with it
    is complete ([`quickdraw.data.sources`][quickdraw.data.sources] generates again otherwise). An invalid marker is
    replaced, with a warning."""
    try:
        files = listed(folder) | set(made)
    except MarkerError as e:
        log.warning("%s; replacing it", e)
        files = set(made)
    marker = {"generator": GENERATOR, **how, "files": sorted(files)}
    write_json(folder / MARKER, marker)
