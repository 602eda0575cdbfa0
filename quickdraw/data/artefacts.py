"""Files that operating systems and tools leave beside people's data, which source listings skip.

A zip made by macOS Finder holds `__MACOSX/._cat.csv` (AppleDouble: binary metadata named like
the file it describes) and `.DS_Store`; a folder copied from a Mac to exFAT or SMB holds
`._cat.csv` beside `cat.csv`; Windows leaves `Thumbs.db` and `desktop.ini`, Office
`~$` lock files, Jupyter `.ipynb_checkpoints/` copies, git `.git/`, NAS shares `@eaDir/`
and `#recycle/` (Synology) or `@Recycle/` (QNAP). None of them is data,
and the AppleDouble twins carry the data's own suffixes, so they are recognised by name and
skipped (counted in the manifest's `skipped_files`) rather than read and refused.
"""

from __future__ import annotations

APPLEDOUBLE = "._* (macOS AppleDouble)"
HIDDEN_FILE = ".* (hidden file)"
HIDDEN_FOLDER = ".*/ (hidden folder)"
FILES = {
    ".ds_store": ".DS_Store (macOS Finder)",
    "icon\r": "Icon\\r (macOS folder icon)",
    "thumbs.db": "Thumbs.db (Windows Explorer)",
    "ehthumbs.db": "Thumbs.db (Windows Explorer)",
    "desktop.ini": "desktop.ini (Windows Explorer)",
}
FOLDERS = {
    "__macosx": "__MACOSX/ (macOS Finder zip)",
    "$recycle.bin": "$RECYCLE.BIN/ (Windows)",
    "system volume information": "System Volume Information/ (Windows)",
    # NAS shares: thumbnails and index copies named like the data (@eaDir/cat.csv/...), bins of
    # deleted files and snapshots, which would double or resurrect drawings.
    "@eadir": "@eaDir/ (Synology NAS)",
    "#recycle": "#recycle/ (Synology NAS)",
    "#snapshot": "#snapshot/ (Synology NAS)",
    "@recycle": "@Recycle/ (QNAP NAS)",
    "@recently-snapshot": "@Recently-Snapshot/ (QNAP NAS)",
}


def artefact_kind(name: str, folder: bool = False) -> str | None:
    """What kind of operating-system artefact the file (or `folder`) `name` is; None for data.

    `name` is one path component, without any slash.
    """
    low = name.lower()
    if name in (".", ".."):  # path steps, not names (zip members may hold them)
        return None
    if folder:
        if low in FOLDERS:
            return FOLDERS[low]
        return HIDDEN_FOLDER if name.startswith(".") else None
    if low in FILES:
        return FILES[low]
    if name.startswith("._"):
        return APPLEDOUBLE
    if name.startswith("~$"):
        return "~$* (Office lock file)"
    return HIDDEN_FILE if name.startswith(".") else None


def artefact_in_path(path: str) -> str | None:
    """[`artefact_kind`][quickdraw.data.artefacts.artefact_kind] of a '/'-separated path inside a listed folder or zip: any of its
    folders, then its file name."""
    *folders, name = path.strip("/").split("/")
    for part in folders:
        kind = artefact_kind(part, folder=True)
        if kind:
            return kind
    return artefact_kind(name)
