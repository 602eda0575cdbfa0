"""Export of a store (or chosen classes and splits) to sketch-rnn `.npz` files, one per class.

For users who train generative sketch models (sketch-rnn and its successors) on the same curated
drawings the classifiers see. Each `<class>.npz` holds `train`, `valid` and `test` object
arrays of (n, 3) int16 stroke-3 drawings, as Magenta's loaders expect (a split not chosen is an
empty array), plus `<split>_key_id` int64 arrays and a `frame` marker that let
`quickdraw.convert` read the file back into exactly the same drawings and key_ids. A store of
generated doodles exports a `GENERATED.json` listing the files, so they stay generated when
converted back ([`quickdraw.data.origin`][quickdraw.data.origin]).
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from quickdraw.core.errors import InputError, SettingError
from quickdraw.core.files import atomic_open
from quickdraw.core.outputs import refuse_overwrite
from quickdraw.data.formats.sketchrnn import FRAME, FRAME_KEY, SPLIT_NAMES, batch_to_stroke3
from quickdraw.data.origin import GENERATED, QUICKDRAW, mark_generated
from quickdraw.data.schema import SPLITS
from quickdraw.data.store import Store

log = logging.getLogger(__name__)

NPZ_NAMES = {split: name for name, split in SPLIT_NAMES.items()}  # store split -> sketch-rnn array


def write_npz(
    store: str | Path,
    out: str | Path,
    classes: Sequence[str] | None = None,
    splits: Sequence[str] = SPLITS,
    progress: bool = True,
) -> dict[str, dict[str, int]]:
    """Write `out/<class>.npz` for each of `classes` (default: all); returns drawings per class and split.

    Raises `StoreError` for a damaged store and `ValueError` naming an unknown class or split
    (with the close matches) or a class name that cannot be a file name; `OverwriteError`,
    before writing, when `out` is, lies inside or holds the store or one of the files the
    store was converted from (its manifest's sources): the export would replace them.
    """
    opened = Store(store)
    refuse_overwrite(
        {},
        [("store", store), *(("the store's source", p) for p in source_files(opened))],
        "Write into a new folder (npz.to=DIR).",
        {"npz.to": out},
    )
    classes = list(classes or opened.classes)
    _check(classes, opened.classes, "class", Path(store))
    _check(list(splits), list(SPLITS), "split", Path(store))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, dict[str, int]] = {}
    for name in tqdm(classes, desc=f"export {out}", unit="class", disable=not progress):
        label = opened.classes.index(name)
        arrays: dict[str, np.ndarray] = {FRAME_KEY: np.array(FRAME)}
        for split in SPLITS:
            index = opened[split]
            n = int(index.class_rows[label]) if split in splits else 0
            rows = index.gather(index.class_to_global(label, np.arange(n)))
            drawings = batch_to_stroke3(rows.strokes) if n else []
            column = np.empty(len(drawings), object)
            for i, drawing in enumerate(drawings):  # one by one: equal shapes would broadcast
                column[i] = drawing
            arrays[NPZ_NAMES[split]] = column
            arrays[f"{NPZ_NAMES[split]}_key_id"] = rows.key_ids.astype(np.int64)
        path = out / f"{name}.npz"
        with atomic_open(path, "wb") as f:
            np.savez_compressed(f, **arrays)
        written[name] = {s: len(arrays[NPZ_NAMES[s]]) for s in SPLITS}
    # Generated doodles stay generated through the round trip (quickdraw.data.origin).
    if opened.manifest.origin == GENERATED:
        mark_generated(out, [f"{name}.npz" for name in written], exported_from=str(store))
    elif opened.manifest.origin != QUICKDRAW:
        log.warning("%s's origin is %r: the .npz files carry none, and a store converted from them "
                    "is taken for Quick, Draw! data", store, opened.manifest.origin or "not recorded")  # fmt: skip
    return written


def source_files(store: Store) -> list[Path]:
    """The files `store` was converted from, as its manifest names them (a zip for its members:
    `archive.zip!member`)."""
    names = (s["name"] for s in store.manifest.sources)
    return list(dict.fromkeys(Path(n if Path(n).exists() else n.partition("!")[0]) for n in names))


def _check(asked: list[str], known: list[str], what: str, store: Path) -> None:
    for name in asked:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; it has {known[:10]}"
            raise SettingError(f"{store} has no {what} {name!r}{hint}")
        if what == "class" and ("/" in name or name.startswith(".") or "\0" in name):
            raise InputError(f"class {name!r} of {store} cannot be a file name; rename it")
