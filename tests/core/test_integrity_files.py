"""Files as people's machines write them (issue 27, section 3 and the coordinate types of section 5):
operating-system artefacts skipped and counted, text encodings honoured or refused by line, the
pickles of every numpy version loaded, and only JSON numbers taken as coordinates.

Each kind is tested over a generated family, plus its case file in `../shared/cases/round3`.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import os
import pickle
import pickletools
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quickdraw.data.conversion import convert
from quickdraw.data.convert_file import ConvertSettings
from quickdraw.data.formats.base import BadRow, InputFile, QuickDrawFormatError
from quickdraw.data.formats.safe_npz import UnsafeFileError, load_npz
from quickdraw.data.input_files import InputStats, iter_input
from quickdraw.data.labels import load_labels
from quickdraw.data.listing import list_sources
from quickdraw.data.parsing import parse_drawing, parse_timed_drawing
from quickdraw.metrics.balancing import load_prior
from tests.helpers.drawings import HEADER, SQUARE, kaggle_row

ROUND3 = "round3"


def csv_text(word: str, n: int, key_base: int = 100) -> str:
    """A Kaggle-layout CSV of `n` squares of `word`, as text (lines end in CRLF, as csv writes)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(HEADER)
    w.writerows(kaggle_row(key_base + i, word) for i in range(n))
    return buf.getvalue()


def ndjson_text(word: str, n: int, key_base: int = 100) -> str:
    rows = ({"word": word, "key_id": str(key_base + i), "drawing": SQUARE} for i in range(n))
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def converted(source: Path, store: Path, **kwargs):
    return convert(source, store, ConvertSettings(**kwargs), progress=False)


def kept(m) -> int:
    return sum(m.rows.values())


# -- 1. operating-system artefacts ------------------------------------------------------------------
APPLEDOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(200)
# name -> content; every one of them would be read (or refused) if it were listed as data.
ARTEFACTS = {
    "._cat.csv": APPLEDOUBLE,
    ".DS_Store": b"\x00\x00\x00\x01Bud1" + bytes(60),
    "Thumbs.db": bytes(64),
    "desktop.ini": b"[.ShellClassInfo]\r\n",
    "Icon\r": b"",
    "~$cat.csv": b"\x05user" + bytes(40),
    ".hidden.csv": csv_text("cat", 3, key_base=900).encode(),
    ".git/objects/cat.csv": csv_text("cat", 3, key_base=900).encode(),
    ".ipynb_checkpoints/cat-checkpoint.csv": csv_text("cat", 5).encode(),  # a copy: would double
    "__MACOSX/data/._cat.csv": APPLEDOUBLE,
    # Volumes and NAS shares: index copies named like the data, bins of deleted files (copies).
    ".Spotlight-V100/Store-V2/cat.csv": csv_text("cat", 5).encode(),
    ".Trashes/501/cat.csv": csv_text("cat", 5).encode(),
    ".fseventsd/fseventsd-uuid": b"\x00" * 16,
    "@eaDir/cat.csv/SYNOINDEX_MEDIA_INFO.csv": csv_text("cat", 5).encode(),
    "#recycle/cat.csv": csv_text("cat", 5).encode(),
    "@Recycle/cat.csv": csv_text("cat", 5).encode(),
    "$RECYCLE.BIN/S-1-5-21-1004/$RA1B2C3.csv": csv_text("cat", 5).encode(),
    "System Volume Information/IndexerVolumeGuid.csv": b"\xff\xfe{\x00",
}
EXPECTED_KINDS = {
    "._cat.csv": "._* (macOS AppleDouble)",
    ".DS_Store": ".DS_Store (macOS Finder)",
    "Thumbs.db": "Thumbs.db (Windows Explorer)",
    "desktop.ini": "desktop.ini (Windows Explorer)",
    "Icon\r": "Icon\\r (macOS folder icon)",
    "~$cat.csv": "~$* (Office lock file)",
    ".hidden.csv": ".* (hidden file)",
    ".git/objects/cat.csv": ".*/ (hidden folder)",
    ".ipynb_checkpoints/cat-checkpoint.csv": ".*/ (hidden folder)",
    "__MACOSX/data/._cat.csv": "__MACOSX/ (macOS Finder zip)",
    ".Spotlight-V100/Store-V2/cat.csv": ".*/ (hidden folder)",
    ".Trashes/501/cat.csv": ".*/ (hidden folder)",
    ".fseventsd/fseventsd-uuid": ".*/ (hidden folder)",
    "@eaDir/cat.csv/SYNOINDEX_MEDIA_INFO.csv": "@eaDir/ (Synology NAS)",
    "#recycle/cat.csv": "#recycle/ (Synology NAS)",
    "@Recycle/cat.csv": "@Recycle/ (QNAP NAS)",
    "$RECYCLE.BIN/S-1-5-21-1004/$RA1B2C3.csv": "$RECYCLE.BIN/ (Windows)",
    "System Volume Information/IndexerVolumeGuid.csv": "System Volume Information/ (Windows)",
}


def layout(root: Path, how: str, artefact: str) -> Path:
    """`data/cat.csv` (5 drawings) and `data/dog.ndjson` (4) with one artefact beside them, as
    a folder, a zip, or a folder holding the zip; returns what to convert."""
    files = {
        "data/cat.csv": csv_text("cat", 5).encode(),
        "data/dog.ndjson": ndjson_text("dog", 4, key_base=500).encode(),
        f"data/{artefact}" if not artefact.startswith("__MACOSX") else artefact: ARTEFACTS[
            artefact
        ],
    }
    if how == "folder":
        for name, content in files.items():
            (root / "in" / name).parent.mkdir(parents=True, exist_ok=True)
            (root / "in" / name).write_bytes(content)
        return root / "in"
    archive = root / "in" / "nested" / "drawings.zip" if how == "nested zip" else root / "in.zip"
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w") as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return root / "in" if how == "nested zip" else archive


@pytest.mark.parametrize("how", ["folder", "zip", "nested zip"])
@pytest.mark.parametrize("artefact", list(ARTEFACTS))
def test_os_artefacts_are_skipped_and_counted_wherever_they_are(tmp_path, how, artefact):
    source = layout(tmp_path, how, artefact)
    m = converted(source, tmp_path / "qd")
    assert m.classes == ["cat", "dog"] and kept(m) == 9 and not m.bad_rows
    assert m.skipped_files == {EXPECTED_KINDS[artefact]: 1}
    # predict and evaluate list their inputs the same way: the same 9 drawings, nothing else.
    stats = InputStats()
    keys = sorted(k for b in iter_input(source, 16, stats) for k in b.key_ids.tolist())
    assert keys == [*range(100, 105), *range(500, 504)] and not stats.bad


def test_finder_zip_converts_its_80_drawings(cases, tmp_path):
    m = converted(cases / ROUND3 / "macos_zip" / "tiny_4class_macos.zip", tmp_path / "qd")
    assert m.classes == ["The Eiffel Tower", "cat", "hot dog", "house"]
    assert kept(m) == 80 and not m.bad_rows
    assert m.skipped_files == {".DS_Store (macOS Finder)": 1, "__MACOSX/ (macOS Finder zip)": 4}


def test_appledouble_twin_in_a_copied_folder_is_skipped(cases, tmp_path, caplog):
    folder = cases / ROUND3 / "appledouble_folder"
    with caplog.at_level("INFO"):
        m = converted(folder, tmp_path / "qd")
    assert m.classes == ["cat"] and kept(m) == 20
    assert m.skipped_files == {"._* (macOS AppleDouble)": 1}
    assert "skipped 1 operating-system files" in caplog.text and "._cat.csv" in caplog.text
    assert [s.filename for s in list_sources(folder).sources] == ["cat.csv"]


@pytest.mark.parametrize("inner", ["drawings.zip", "sub/MORE.ZIP"])
def test_a_zip_inside_a_zip_is_refused_not_left_out(tmp_path, inner):
    """A zip member that is itself a zip would be left out with its drawings: refused, naming it."""
    payload = io.BytesIO()
    with zipfile.ZipFile(payload, "w") as zf:
        zf.writestr("dog.csv", csv_text("dog", 4, key_base=500))
    archive = tmp_path / "outer.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("cat.csv", csv_text("cat", 5))
        zf.writestr(inner, payload.getvalue())
        zf.writestr(f"__MACOSX/._{Path(inner).name}", APPLEDOUBLE)  # its twin stays an artefact
    for read in (lambda: converted(archive, tmp_path / "qd"), lambda: list_sources(archive)):
        with pytest.raises(QuickDrawFormatError, match=rf"outer.zip holds the zip archive '{inner}'.*extract outer.zip"):  # fmt: skip
            read()
    # The same zip in a folder is read, and so are a folder's zips: only a zip's zips are refused.
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "dog.zip").write_bytes(payload.getvalue())
    assert converted(tmp_path / "folder", tmp_path / "qd2").classes == ["dog"]


def test_a_folder_of_artefacts_only_is_refused_saying_what_was_skipped(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "._cat.csv").write_bytes(APPLEDOUBLE)
    with pytest.raises(QuickDrawFormatError, match=r"holds no .*skipped 1 operating-system"):
        converted(tmp_path / "in", tmp_path / "qd")


# A bad header is quoted, never dumped: binary junk, one 1 MB line, a thousand columns.
BAD_HEADERS = {
    "binary": APPLEDOUBLE,
    "long line": b"x" * (1 << 20) + b"\n",
    "many columns": ",".join(f"column{i}" for i in range(1000)).encode() + b"\n",
    "control characters": bytes(range(1, 32)).replace(b"\n", b"").replace(b"\r", b"") * 40 + b"\n",
}


@pytest.mark.parametrize("content", list(BAD_HEADERS.values()), ids=list(BAD_HEADERS))
def test_errors_quote_a_short_excerpt_of_a_bad_header(tmp_path, content):
    (tmp_path / "cat.csv").write_bytes(content)
    (tmp_path / "labels.csv").write_bytes(content)
    (tmp_path / "prior.csv").write_bytes(content)
    reads = {
        "convert": lambda: converted(tmp_path / "cat.csv", tmp_path / "qd", classes=["cat"]),
        "predict": lambda: list(iter_input(tmp_path / "cat.csv", 4, InputStats())),
        "labels": lambda: load_labels(tmp_path / "labels.csv"),
        "prior": lambda: load_prior(tmp_path / "prior.csv", ["cat"]),
    }
    for what, read in reads.items():
        with pytest.raises(ValueError) as e:
            read()
        message = str(e.value)
        assert len(message) < 400, f"{what}: {len(message)} characters"
        assert not any(ord(c) < 32 for c in message), f"{what}: raw control characters"


# -- 2. text encodings ---------------------------------------------------------------------------------
WORD = "crème brûlée"  # accents in Latin-1's range, so the legacy encodings can write it
READABLE = {  # how the file is saved -> its bytes
    "utf-8": lambda t: t.encode("utf-8"),
    "utf-8 with BOM": lambda t: codecs.BOM_UTF8 + t.encode("utf-8"),
    "utf-16-le with BOM": lambda t: codecs.BOM_UTF16_LE + t.encode("utf-16-le"),
    "utf-16-be with BOM": lambda t: codecs.BOM_UTF16_BE + t.encode("utf-16-be"),
    "utf-16 (python, BOM)": lambda t: t.encode("utf-16"),
    "utf-32-le with BOM": lambda t: codecs.BOM_UTF32_LE + t.encode("utf-32-le"),
    "utf-32-be with BOM": lambda t: codecs.BOM_UTF32_BE + t.encode("utf-32-be"),
}
REFUSED = {  # how the file is saved -> (its bytes, what the error must say)
    "cp1252": (lambda t: t.encode("cp1252"), r"line 2 is not UTF-8 text.*Windows-1252"),
    "latin-1": (lambda t: t.encode("latin-1"), r"line 2 is not UTF-8 text.*Windows-1252"),
    "mac roman": (lambda t: t.encode("mac_roman"), r"line 2 is not UTF-8 text.*Mac Roman"),
    "utf-16-le, no BOM": (lambda t: t.encode("utf-16-le"), "UTF-16-LE without a byte-order mark"),
    "utf-16-be, no BOM": (lambda t: t.encode("utf-16-be"), "UTF-16-BE without a byte-order mark"),
}
TEXT = {"csv": csv_text, "ndjson": ndjson_text}


def saved(root: Path, kind: str, container: str, data: bytes, word: str = WORD) -> Path:
    """`data` saved as `<word>.<kind>`, plain, gzipped, or in a zip."""
    name = f"{word}.{kind}"
    root.mkdir(parents=True, exist_ok=True)
    if container == "zip":
        with zipfile.ZipFile(root / "in.zip", "w") as zf:
            zf.writestr(name, data)
        return root / "in.zip"
    if container == "gzip":
        (root / f"{name}.gz").write_bytes(gzip.compress(data))
        return root / f"{name}.gz"
    (root / name).write_bytes(data)
    return root / name


@pytest.mark.parametrize("container", ["plain", "gzip", "zip"])
@pytest.mark.parametrize("kind", list(TEXT))
@pytest.mark.parametrize("encoding", list(READABLE))
def test_text_with_a_byte_order_mark_is_read_in_its_encoding(tmp_path, encoding, kind, container):
    data = READABLE[encoding](TEXT[kind](WORD, 6))
    source = saved(tmp_path / "in", kind, container, data)
    m = converted(source, tmp_path / "qd")
    assert m.classes == [WORD] and kept(m) == 6 and not m.bad_rows
    stats = InputStats()
    words = [w for b in iter_input(source, 4, stats) for w in b.words]
    assert words == [WORD] * 6 and not stats.bad


@pytest.mark.parametrize("container", ["plain", "gzip", "zip"])
@pytest.mark.parametrize("kind", list(TEXT))
@pytest.mark.parametrize("encoding", list(REFUSED))
def test_text_not_in_utf8_is_refused_naming_file_line_and_encoding(
    tmp_path, encoding, kind, container
):
    # Line 1 is ASCII (the CSV header, or an ndjson record of another word); line 2 has accents.
    text = TEXT[kind](WORD, 3)
    if kind == "ndjson":
        text = ndjson_text("cat", 1, key_base=1) + text
    encode, message = REFUSED[encoding]
    source = saved(tmp_path / "in", kind, container, encode(text))
    for read in (
        lambda: converted(source, tmp_path / "qd", classes=[WORD]),
        lambda: list(iter_input(source, 4, InputStats())),
    ):
        with pytest.raises(QuickDrawFormatError, match=message) as e:
            read()
        assert f"{WORD}.{kind}" in str(e.value) and "\ufffd" not in str(e.value)
        assert "Save it as UTF-8" in str(e.value)


@pytest.mark.parametrize(
    "word,codec,named",
    [
        ("café", "cp1252", "Windows-1252"),
        ("Ärger", "latin-1", "Windows-1252"),
        ("café", "mac_roman", "Mac Roman"),  # as Windows-1252: 'cafŽ'
        ("crème brûlée", "mac_roman", "Mac Roman"),  # as Shift-JIS: a kanji inside 'cr?me'
        ("猫", "shift_jis", "Shift-JIS"),  # as Windows-1252: '”L'
        ("ねこ", "shift_jis", "Shift-JIS"),
    ],
)
def test_the_encoding_a_class_name_was_saved_in_is_named(tmp_path, word, codec, named):
    path = tmp_path / "drawings.csv"
    path.write_bytes(csv_text(word, 2).encode(codec))
    with pytest.raises(QuickDrawFormatError, match=f"line 2 is not UTF-8 text.*looks like {named}") as e:  # fmt: skip
        converted(path, tmp_path / "qd", classes=[word])
    assert repr(word)[1:-1] in str(e.value) or word in str(e.value)  # the word as it would read


def test_bad_bytes_far_into_a_file_are_found_on_their_line(tmp_path):
    # Decoding reads ahead in chunks: the line is found again from the file's start.
    text = csv_text("cat", 3000)
    lines = text.splitlines(keepends=True)
    data = "".join(lines[:2500]).encode() + "café".encode("cp1252") + "".join(lines[2500:]).encode()
    (tmp_path / "cat.csv").write_bytes(data)
    with pytest.raises(QuickDrawFormatError, match=r"cat.csv line 2501 is not UTF-8.*'café"):
        converted(tmp_path / "cat.csv", tmp_path / "qd", classes=["cat"])


def test_windows_1252_csv_never_makes_a_replacement_character_class(cases, tmp_path):
    folder = cases / ROUND3 / "cp1252"
    with pytest.raises(QuickDrawFormatError) as e:
        converted(folder, tmp_path / "qd")
    message = str(e.value)
    assert "café.csv line 2 is not UTF-8" in message and "Windows-1252" in message
    assert not (tmp_path / "qd" / "manifest.json").exists()


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8 with BOM", "utf-16-le with BOM"])
def test_labels_and_priors_are_read_like_the_inputs(tmp_path, encoding):
    encode = READABLE[encoding]
    (tmp_path / "labels.csv").write_bytes(encode("key_id,word\r\n7,café\r\n8,cat\r\n"))
    assert load_labels(tmp_path / "labels.csv") == {7: "café", 8: "cat"}
    (tmp_path / "prior.csv").write_bytes(encode("word,count\r\ncafé,1\r\ncat,3\r\n"))
    assert load_prior(tmp_path / "prior.csv", ["café", "cat"]).tolist() == [0.25, 0.75]


def test_labels_in_windows_1252_are_refused_by_line(tmp_path):
    (tmp_path / "labels.csv").write_bytes("key_id,word\n7,cat\n8,café\n".encode("cp1252"))
    with pytest.raises(QuickDrawFormatError, match=r"labels.csv line 3 is not UTF-8.*Windows-1252"):
        load_labels(tmp_path / "labels.csv")


def stroke3_npz(n: int = 3) -> bytes:
    """A sketch-rnn .npz holding `n` small stroke-3 drawings in `train`."""
    drawings = np.empty(n, object)
    for i in range(n):
        drawings[i] = np.array([[0, 0, 0], [10 + i, 5, 0], [5, 10, 1]], np.int16)
    buf = io.BytesIO()
    np.savez(buf, train=drawings)
    return buf.getvalue()


def zip_with_raw_name(path: Path, name: bytes, data: bytes, utf8_flag: bool) -> None:
    """A zip whose one member's name is `name`'s bytes, with or without the UTF-8 flag (bit 11),
    as macOS's Archive Utility (UTF-8, no flag) or old Windows tools (cp437, no flag) write it."""
    placeholder = "m" * (len(name) - 4) + name[-4:].decode()
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(placeholder, data)
    raw = path.read_bytes()
    assert raw.count(placeholder.encode()) == 2  # the local header and the central directory
    raw = raw.replace(placeholder.encode(), name)
    if utf8_flag:  # general purpose flags: local header at 6, central directory entry at 8
        central = raw.rindex(b"PK\x01\x02")
        for at in (6, central + 8):
            raw = raw[:at] + (int.from_bytes(raw[at : at + 2], "little") | 0x800).to_bytes(2, "little") + raw[at + 2 :]  # fmt: skip
    path.write_bytes(raw)


@pytest.mark.parametrize(
    "name, flag",
    [
        ("café.npz".encode(), True),  # as Python and most tools write it
        ("café.npz".encode(), False),  # macOS Archive Utility: UTF-8 without the flag
        ("café.npz".encode("cp437"), False),  # old Windows zips: cp437, as the spec says
    ],
    ids=["utf8 flagged", "utf8 unflagged", "cp437"],
)
def test_class_names_from_zip_member_names_are_read_as_written(tmp_path, name, flag):
    zip_with_raw_name(tmp_path / "in.zip", name, stroke3_npz(), flag)
    m = converted(tmp_path / "in.zip", tmp_path / "qd")
    assert m.classes == ["café"] and kept(m) == 3


@pytest.mark.skipif(sys.platform != "linux", reason="needs a file system that stores any bytes")
def test_a_file_name_that_is_not_utf8_is_refused_not_stored(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / os.fsdecode("café.npz".encode("cp1252"))).write_bytes(stroke3_npz())
    with pytest.raises(QuickDrawFormatError, match=r"file name is not UTF-8.*'café'.*rename"):
        converted(tmp_path / "in", tmp_path / "qd")


# -- 3. numpy pickles of every version -----------------------------------------------------------------
class NumpyPickler(pickle._Pickler):  # the Python pickler: its save_global can be overridden
    """Pickles as a numpy version whose module is `core` (1.x: `numpy.core`) would."""

    def __init__(self, file, protocol: int, core: str):
        super().__init__(file, protocol)
        self.core = core

    def save_global(self, obj, name=None):
        module = getattr(obj, "__module__", "") or ""
        if not module.startswith("numpy._core."):
            return super().save_global(obj, name)
        module = module.replace("numpy._core", self.core, 1)
        name = name or obj.__qualname__
        if self.proto >= 4:
            self.save(module)
            self.save(name)
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode())
        self.memoize(obj)

    # The Python pickler saves functions through its class-level table, not the attribute.
    dispatch = pickle._Pickler.dispatch | {types.FunctionType: save_global}


def npy_of_pickle(array: np.ndarray, protocol: int, core: str) -> bytes:
    """An object array as the `.npy` np.save writes: header, then the pickle of `protocol`."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, np.lib.format.header_data_from_array_1_0(array))
    NumpyPickler(buf, protocol, core).dump(array)
    return buf.getvalue()


def globals_of(pickled: bytes) -> set[str]:
    """The globals a pickle names, read with pickletools (GLOBAL, or two strings then STACK_GLOBAL)."""
    found, strings = set(), []
    for op, arg, _ in pickletools.genops(pickled):
        if op.name == "GLOBAL":
            found.add(arg.replace(" ", "."))
        elif op.name == "STACK_GLOBAL":
            found.add(".".join(strings[-2:]))
        elif isinstance(arg, str):
            strings.append(arg)
    return found


DTYPES = [np.int16, np.uint8, np.int32, np.int64, np.float32, np.float64]


def drawings_of(dtype) -> np.ndarray:
    out = np.empty(4, object)
    out[0] = np.array([[0, 0, 0], [10, 5, 0], [5, 10, 1]], dtype)
    out[1] = np.array([[3, 4, 1]], dtype)
    out[2] = np.zeros((0, 3), dtype)  # empty data: protocol 2 writes bytes() for it
    out[3] = np.asfortranarray(np.arange(12, dtype=dtype).reshape(4, 3))
    return out


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("core", ["numpy.core", "numpy._core"])
@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_every_numpy_pickle_layout_loads(tmp_path, protocol, core, dtype):
    array = drawings_of(dtype)
    npy = npy_of_pickle(array, protocol, core)
    names = globals_of(npy[npy.index(b"\x80") :])
    assert f"{core}.multiarray._reconstruct" in names
    if protocol == 2:  # numpy <= 1.16 on Python 3: bytes rebuilt through _codecs.encode
        assert {"_codecs.encode", "__builtin__.bytes"} <= names
    if protocol == 5:
        assert f"{core}.numeric._frombuffer" in names
    with zipfile.ZipFile(tmp_path / "cat.npz", "w") as zf:
        zf.writestr("train.npy", npy)
    loaded = load_npz(InputFile(tmp_path / "cat.npz"), 1 << 30)["train"]
    assert loaded.dtype == object and len(loaded) == len(array)
    for got, want in zip(loaded, array, strict=True):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_a_numpy_116_sketchrnn_file_converts(tmp_path):
    array = np.empty(3, object)
    for i in range(3):
        array[i] = np.array([[0, 0, 0], [10 + i, 5, 0], [5, 10, 1]], np.int16)
    with zipfile.ZipFile(tmp_path / "cat.npz", "w") as zf:
        zf.writestr("train.npy", npy_of_pickle(array, 2, "numpy.core"))
    m = converted(tmp_path / "cat.npz", tmp_path / "qd")
    assert m.classes == ["cat"] and kept(m) == 3 and not m.bad_rows


def hand_pickle(*ops: bytes) -> bytes:
    """A protocol-2 pickle from raw opcodes."""
    return b"\x80\x02" + b"".join(ops) + b"."


def string(s: str) -> bytes:
    return b"X" + len(s.encode()).to_bytes(4, "little") + s.encode()


# Pickles that ask the allowed stand-ins for more than numpy's own files do, or for anything else.
CRAFTED = {
    "eval": hand_pickle(b"cbuiltins\neval\n", string("__import__('os').mkdir('MARK')"), b"\x85R"),
    "codecs other than latin1": hand_pickle(
        b"c_codecs\nencode\n", string("x"), string("rot13"), b"\x86R"
    ),  # fmt: skip
    "codecs on non-text": hand_pickle(
        b"c_codecs\nencode\n", b"J\x00\x00\x00\x10", string("latin1"), b"\x86R"
    ),  # fmt: skip
    "bytes(n) allocation": hand_pickle(
        b"c__builtin__\nbytes\n", b"\x8a\x05\x00\x00\x00\x00\x01\x85R"
    ),  # fmt: skip
    "os.system by another name": hand_pickle(
        b"cnumpy.core.multiarray\nsystem\n", string("true"), b"\x85R"
    ),  # fmt: skip
}
# _frombuffer(bytes, dtype("O"), (1,), "C"): MARK, the four arguments, TUPLE, REDUCE.
CRAFTED["frombuffer of objects"] = hand_pickle(
    b"cnumpy._core.numeric\n_frombuffer\n(",
    b"C\x08" + bytes(8),
    b"cnumpy\ndtype\n",
    string("O"),
    b"\x85R",
    b"K\x01\x85",
    string("C"),
    b"tR",
)


# What each is refused for: the global named, or the stand-in's check that failed.
REFUSED_FOR = {
    "eval": "asks for builtins.eval",
    "codecs other than latin1": "_codecs.encode(str, 'rot13')",
    "codecs on non-text": "_codecs.encode(int, 'latin1')",
    "bytes(n) allocation": "bytes(4294967296,) is not an empty bytes object",
    "frombuffer of objects": "_frombuffer(..., dtype('O'), (1,), 'C')",
    "os.system by another name": "asks for numpy.core.multiarray.system",
}


@pytest.mark.parametrize("name", list(CRAFTED))
def test_crafted_pickles_are_refused_and_run_nothing(tmp_path, monkeypatch, name):
    payload = CRAFTED[name]
    monkeypatch.chdir(tmp_path)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|O", "fortran_order": False, "shape": (1,)}
    )
    with zipfile.ZipFile(tmp_path / "cat.npz", "w") as zf:
        zf.writestr("train.npy", header.getvalue() + payload)
    with pytest.raises(QuickDrawFormatError, match=r"cat.npz: member train.npy") as e:
        load_npz(InputFile(tmp_path / "cat.npz"), 1 << 30)
    assert len(str(e.value)) < 600 and REFUSED_FOR[name] in str(e.value)
    assert not (tmp_path / "MARK").exists()
    if b"eval" in payload or b"system" in payload:
        assert isinstance(e.value, UnsafeFileError)


# -- 4. only JSON numbers are coordinates ------------------------------------------------------------
NOT_NUMBERS = [True, False, "12", "1.0", "", None, [1], {"x": 1}]


def with_value(drawing: list, stroke: int, axis: int, at: int, value) -> list:
    drawing = json.loads(json.dumps(drawing))
    drawing[stroke][axis][at] = value
    return drawing


@pytest.mark.parametrize("value", NOT_NUMBERS, ids=repr)
@pytest.mark.parametrize("axis", [0, 1])
def test_json_values_that_are_not_numbers_are_not_coordinates(value, axis):
    drawing = with_value(SQUARE, 0, axis, 2, value)
    for fmt in ("simplified", "raw", "auto"):
        with pytest.raises(BadRow) as e:
            parse_drawing(drawing, fmt)
        assert e.value.reason == "bad_coordinates"
        assert "not a JSON number" in e.value.detail
    with pytest.raises(BadRow, match="bad_coordinates"):
        parse_drawing(json.dumps(drawing))


@pytest.mark.parametrize("value", NOT_NUMBERS, ids=repr)
def test_times_that_are_not_numbers_are_bad_times(value):
    drawing = [[[0, 100, 200], [0, 50, 90], [0, 15, 30]]]
    assert parse_timed_drawing(drawing)[2] is not None
    drawing[0][2][1] = value
    with pytest.raises(BadRow) as e:
        parse_timed_drawing(drawing)
    assert e.value.reason == "bad_times"


def test_numbers_in_every_json_spelling_are_still_coordinates():
    for text in ("[[[10, 200.0, 2e2], [10, 1E1, 10]]]", "[[[10, 200, 200], [10, 10, 10]]]"):
        points, lengths = parse_drawing(text)
        assert points.tolist() == [[10, 10], [200, 10], [200, 10]] and lengths == [3]


@pytest.mark.parametrize("value", [True, "12", None], ids=repr)
def test_rows_with_such_coordinates_are_counted_bad_in_every_reader(tmp_path, value):
    bad = with_value(SQUARE, 0, 0, 1, value)
    rows = [kaggle_row(1, "cat"), kaggle_row(2, "cat", bad), kaggle_row(3, "cat")]
    buf = io.StringIO()
    csv.writer(buf).writerows([HEADER, *rows])
    (tmp_path / "cat.csv").write_text(buf.getvalue())
    raw = [[[0, 100, 200], [0, 50, 90], [0, 15, 30]]]
    lines = [
        {"word": "cat", "key_id": "1", "drawing": raw},
        {"word": "cat", "key_id": "2", "drawing": with_value(raw, 0, 2, 1, value)},
        {"word": "cat", "key_id": "3", "drawing": with_value(raw, 0, 1, 1, value)},
        {"word": "cat", "key_id": "4", "drawing": raw},
    ]
    (tmp_path / "raw.ndjson").write_bytes(b"\n".join(map(orjson.dumps, lines)) + b"\n")
    m = converted(tmp_path / "cat.csv", tmp_path / "qd", classes=["cat"])
    assert kept(m) == 2 and m.bad_rows == {"bad_coordinates": 1}
    m = converted(tmp_path / "raw.ndjson", tmp_path / "qd2", classes=["cat"])
    assert kept(m) == 2 and m.bad_rows == {"bad_coordinates": 1, "bad_times": 1}
    stats = InputStats()
    list(iter_input(tmp_path / "raw.ndjson", 8, stats))
    assert sorted((u.key_id, u.reason) for u in stats.unreadable) == [
        (2, "bad_times"),
        (3, "bad_coordinates"),
    ]


def test_the_demo_refuses_such_a_drawing_with_its_reason():
    from quickdraw.serving.guesser import InputRejected, simplified

    with pytest.raises(InputRejected, match="bad_coordinates"):
        simplified([[[10, True, 30], [5, 6, 7]]], max_points=1000)


not_a_number = st.one_of(
    st.booleans(),
    st.none(),
    st.text(max_size=5),
    st.integers(0, 255).map(str),
    st.lists(st.integers(0, 255), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)


@settings(max_examples=60, deadline=None)
@given(
    strokes=st.lists(
        st.integers(1, 6).flatmap(
            lambda n: st.tuples(
                st.lists(st.integers(0, 255), min_size=n, max_size=n),
                st.lists(st.integers(0, 255), min_size=n, max_size=n),
            )
        ),
        min_size=1,
        max_size=4,
    ),
    value=not_a_number,
    where=st.tuples(st.integers(0, 3), st.integers(0, 1), st.integers(0, 5)),
)
def test_fuzz_one_non_number_anywhere_makes_the_drawing_bad(strokes, value, where):
    drawing = [[list(xs), list(ys)] for xs, ys in strokes]
    points, _ = parse_drawing(drawing)
    assert len(points) == sum(len(xs) for xs, _ in strokes)
    s = where[0] % len(drawing)
    i = where[2] % len(drawing[s][0])
    drawing[s][where[1]][i] = value
    with pytest.raises(BadRow) as e:
        parse_drawing(drawing)
    assert e.value.reason == "bad_coordinates"
