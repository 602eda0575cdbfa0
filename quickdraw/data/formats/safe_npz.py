"""Reading `.npz` files from the internet without letting them run code.

numpy keeps object arrays (sketch-rnn's arrays of drawings) as pickles, and
`np.load(..., allow_pickle=True)` unpickles them with every importable global available, so a
crafted file can call `os.system` while loading. Here plain arrays load with
`allow_pickle=False`, and object arrays go through an unpickler that can rebuild numpy arrays
and dtypes and nothing else: any other global is refused before it is looked up, let alone
called. Python 2 pickles (sketch-rnn's own files) are read as their loader does, `latin1`;
the few other calls numpy's own pickles make (`_codecs.encode` for protocol 2's bytes,
`_frombuffer` for protocol 5) are stand-ins that check their arguments and can only make bytes
or a numeric array.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np

from quickdraw.data.formats.base import InputFile, QuickDrawFormatError, open_bytes


class UnsafeFileError(QuickDrawFormatError):
    """An `.npz` whose pickle asks for code other than numpy's array rebuilding: never loaded."""


class _NdarrayType:
    """Stands for `numpy.ndarray` inside a pickle: usable only as `_reconstruct`'s first argument."""


def _reconstruct(subtype, shape, dtype) -> np.ndarray:
    # ndarray.__reduce__ always writes _reconstruct(ndarray, (0,), b"b") and sets shape, dtype and
    # data with __setstate__ afterwards; demanding exactly that keeps a pickle from allocating here.
    if subtype is not _NdarrayType or tuple(shape) != (0,) or dtype not in (b"b", "b"):
        raise pickle.UnpicklingError(
            f"_reconstruct({subtype!r}, {shape!r}, {dtype!r}) is not numpy's"
        )
    return np.ndarray((0,), np.int8)


def _latin1_bytes(text, encoding) -> bytes:
    # Protocol 2 has no bytes opcode: Python 3 writes bytes as _codecs.encode(str, "latin1"), which
    # numpy <= 1.16 files hold for every array's data. Only that call, only to make bytes.
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError(f"_codecs.encode({type(text).__name__}, {encoding!r})")
    return text.encode("latin1")


def _empty_bytes(*args) -> bytes:
    # ... and empty bytes (an empty array's data) as bytes(); bytes(n) would allocate n bytes.
    if args:
        raise pickle.UnpicklingError(f"bytes{args!r} is not an empty bytes object")
    return b""


def _frombuffer(buffer, dtype, shape, order) -> np.ndarray:
    # Protocol 5 (pickle.dumps(array, protocol=5)) stores plain arrays as _frombuffer(data, dtype,
    # shape, order); checked so that only a numeric array of exactly that data comes out.
    if (
        not isinstance(buffer, (bytes, bytearray))
        or not isinstance(dtype, np.dtype)
        or dtype.hasobject
        or order not in ("C", "F")
        or not isinstance(shape, tuple)
        or not all(type(n) is int and n >= 0 for n in shape)
    ):
        raise pickle.UnpicklingError(f"_frombuffer(..., {dtype!r}, {shape!r}, {order!r})")
    return np.frombuffer(buffer, dtype).reshape(shape, order=order)


# Every global the pickles of released numpy versions name for object arrays of arrays: np.save
# writes protocol 2 (numpy <= 1.16), 3 (1.17-1.26) or 4 (2.x); pickle.dump gives any protocol.
ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,  # numpy 1.x and Python 2 files
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,  # numpy 2
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,  # protocol 5, numpy 1.x
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,  # protocol 5, numpy 2
    ("numpy", "ndarray"): _NdarrayType,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_bytes,  # protocol 2 on Python 3
    ("__builtin__", "bytes"): _empty_bytes,
    ("builtins", "bytes"): _empty_bytes,
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise UnsafeFileError(f"{module}.{name}") from None


def load_npz(source: InputFile, max_bytes: int) -> dict[str, np.ndarray]:
    """Every array of an `.npz` source by name; object arrays through the restricted unpickler.

    Raises `UnsafeFileError` naming the file, the member and the global its pickle asked for, and
    `QuickDrawFormatError` for a file that is not a readable `.npz` or over `max_bytes`.
    """
    try:
        if source.member is None and not source.gzipped:
            archive = zipfile.ZipFile(source.path)
        else:
            with open_bytes(source, max_bytes) as f:
                archive = zipfile.ZipFile(io.BytesIO(f.read()))
    except zipfile.BadZipFile as e:
        raise QuickDrawFormatError(f"{source.name}: not an .npz (zip) archive ({e})") from e
    with archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        total = sum(i.file_size for i in infos)
        if total > max_bytes:
            raise QuickDrawFormatError(
                f"{source.name}: {total:,} bytes once decompressed, over max_bytes ({max_bytes:,})"
            )
        return {Path(i.filename).stem: _read_member(archive, i.filename, source) for i in infos}


def _read_member(archive: zipfile.ZipFile, member: str, source: InputFile) -> np.ndarray:
    where = f"{source.name}: member {member}"
    try:
        with archive.open(member) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                _, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                _, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                dtype = None  # version 3 (UTF-8 field names): plain arrays only
            if dtype is not None and dtype.hasobject:
                return _unpickle(f, where)
        with archive.open(member) as f:
            return np.lib.format.read_array(f, allow_pickle=False)
    except QuickDrawFormatError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise QuickDrawFormatError(f"{where} is not a readable .npy array ({e})") from e


def _unpickle(f, where: str) -> np.ndarray:
    try:
        value = _ArrayUnpickler(f, encoding="latin1").load()
    except UnsafeFileError as e:
        raise UnsafeFileError(
            f"{where}: its pickle asks for {e}, which is not numpy's array rebuilding; refusing to "
            "load it (np.load(allow_pickle=True) would have run it). This is not a genuine "
            "sketch-rnn file: delete it and download the original "
            "(python -m quickdraw.download --kind sketchrnn)"
        ) from None
    except (pickle.UnpicklingError, TypeError, ValueError, AttributeError, EOFError) as e:
        raise QuickDrawFormatError(f"{where}: not a numpy object array pickle ({e})") from e
    if not isinstance(value, np.ndarray):
        raise QuickDrawFormatError(f"{where}: holds a {type(value).__name__}, not an array")
    return value
