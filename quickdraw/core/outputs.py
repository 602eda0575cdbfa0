"""Where a command writes: never over one of its own inputs, never into another run's folder.

Every command that writes files checks, before any work, that no path it writes is a path it
reads ([`refuse_overwrite`][quickdraw.core.outputs.refuse_overwrite]): `predict input=T.csv output=T.csv` would replace the test file
by the submission, `convert npz.to=` the folder a store was converted from would replace the
user's `.npz` files by the export. Paths are compared as files, not as strings, so that
`./x/../T.csv`, a symbolic link, a hard link or another case on a case-insensitive disk is still
the same file. Writing over an earlier output that is no input stays allowed, and is said.

Run folders come from [`unique_folder`][quickdraw.core.outputs.unique_folder] (the `${unique_dir:...}` resolver of the Hydra
configs): two commands started in the same second get two folders, never one between them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from quickdraw.core.errors import QuickDrawError

log = logging.getLogger(__name__)

# What a command calls a path (its setting: "output", "input", "ckpt_path") and the path; None or
# "" for a setting not given. A mapping, or pairs where several paths share a name.
Named = Mapping[str, "str | os.PathLike | None"] | Iterable[tuple[str, "str | os.PathLike | None"]]


class OverwriteError(QuickDrawError, ValueError):
    """An output path that is, or lies inside, or holds one of the command's inputs."""


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether `a` and `b` name the same file or folder: by device and inode when both exist
    (symbolic and hard links, case-insensitive disks), else by their resolved absolute paths."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return _resolved(a) == _resolved(b)


def is_within(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether `path` is `folder` or lies somewhere under it (links followed)."""
    if not Path(folder).is_dir():
        return same_file(path, folder)
    target = _resolved(path)
    return any(same_file(p, folder) for p in (target, *target.parents))


def refuse_overwrite(writes: Named, reads: Named, fix: str, folders: Named | None = None) -> None:
    """Raise [`OverwriteError`][quickdraw.core.outputs.OverwriteError] naming both paths when a written path would destroy a read one.

    `writes`: the files the command writes. `folders`: folders the command writes as a whole
    (a store, an export folder); nothing it reads may lie inside one. `reads`: files and
    folders the command reads. Refused: a written file that is a read file, or lies inside a
    read folder; a written folder that is, lies inside or holds a read path. `fix` ends the
    message (what to pass instead). Afterwards each written file that exists already is logged
    as replaced: an earlier output, allowed.
    """
    reads, files, folders = _given(reads), _given(writes), _given(folders or {})
    for label, path in files:
        if Path(path).expanduser().is_dir():  # found only when the finished file is moved in
            raise OverwriteError(
                f"{_show(label, path)} is a folder: name a file to write, in that folder or "
                "elsewhere. Nothing was written."
            )
        if blocker := _file_above(path):  # else found only by mkdir, after the work
            raise OverwriteError(
                f"{_show(label, path)}: {blocker} is a file, not a folder: name a folder to "
                "write into (a new or an existing one). Nothing was written."
            )
    for (label, path), whole in [(w, False) for w in files] + [(f, True) for f in folders]:
        for source, read in reads:
            if same_file(path, read):
                problem = "is"
            elif is_within(path, read):
                problem = "lies inside"
            elif whole and is_within(read, path):
                problem = "holds"
            else:
                continue
            raise OverwriteError(
                f"{_show(label, path)} {problem} {_show(source, read)}: writing there would destroy "
                f"or mix with an input of this command. Nothing was written. {fix}"
            )
    for label, path in files:
        if Path(path).is_file():
            log.warning("%s exists: replacing it (an earlier output)", _show(label, path))


def unique_folder(path: str) -> str:
    """Create the folder `path` and return it; when it exists already, `path_1`, `path_2`...

    `os.mkdir` either creates the folder or fails, atomically, so two processes never get the
    same one (Hydra's `${now:}` alone gives two commands of the same second one folder). The
    suffix keeps a sort by name a sort by start time within the second (`_natural` in
    [`quickdraw.core.runs`][quickdraw.core.runs]).
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    candidate, n = path, 0
    while True:
        try:
            os.mkdir(candidate)
            return candidate
        except FileExistsError:
            n += 1
            candidate = f"{path}_{n}"


def _file_above(path: str | os.PathLike) -> Path | None:
    """The nearest existing folder-to-be above `path` that is a file (`out=notes.txt`), or None."""
    for parent in Path(path).expanduser().parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def _resolved(path: str | os.PathLike) -> Path:
    return Path(os.path.expanduser(path)).resolve()


def _show(label: str, path: str | os.PathLike) -> str:
    """`output=PATH` for a setting, `the store's source PATH` for a description."""
    return f"{label} {path}" if " " in label else f"{label}={path}"


def _given(named: Named) -> list[tuple[str, str | os.PathLike]]:
    pairs = named.items() if isinstance(named, Mapping) else named
    return [(label, path) for label, path in pairs if path]
