"""Text inputs as people's machines save them: byte-order marks honoured, other encodings refused.

Every text input (CSV, ndjson, labels, priors; plain, gzip or in a zip) is decoded here, by
[`quickdraw.data.readers.open_text`][quickdraw.data.readers.open_text]. UTF-8 is the rule, with or without a byte-order mark;
UTF-16 and UTF-32 are read when a byte-order mark says so (PowerShell's `>` writes UTF-16 LE
with one). Bytes that are not UTF-8 stop the file with its name, the line and the encoding they
most likely are, rather than becoming U+FFFD: a file in another encoding misreads every
accented word the same way (`café` became the class `caf\\ufffd`), so one re-save fixes it,
while skipping those rows would quietly drop exactly the classes with accents.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from functools import partial
from typing import BinaryIO

# Longest first: a UTF-32 LE mark starts with the UTF-16 LE one.
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
SAVE_AS_UTF8 = (
    "Save it as UTF-8 (Excel: 'CSV UTF-8'; PowerShell: Out-File -Encoding utf8; "
    "or iconv -f ENCODING -t UTF-8 FILE > NEW) and run again"
)


def excerpt(value: object, limit: int = 80) -> str:
    """`repr(value)` cut to `limit` characters: how errors quote file content (headers, rows),
    so a binary file's NUL bytes or a 1 MB line never flood the message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def sniff_bom(head: bytes) -> tuple[str, int]:
    """The codec a file's first bytes ask for and the length of its byte-order mark (UTF-8, 0 if none)."""
    for bom, codec in BOMS:
        if head.startswith(bom):
            return codec, len(bom)
    return "utf-8", 0


def head_problem(head: bytes) -> str | None:
    """Why a file without a byte-order mark is not UTF-8 text, and the fix, judged from NUL bytes in its first
    line (UTF-16 without a mark, or a binary file such as macOS's `._` AppleDouble twins); None if fine.

    Later NULs are left to the row parsers: they are valid UTF-8 and make one bad row.
    """
    first = head.split(b"\n", 1)[0][:256]
    if b"\x00" not in first:
        return None
    even, odd = first[0::2], first[1::2]
    if even and not odd.count(0) and even.count(0) > len(even) // 2:
        return f"it looks like UTF-16-BE without a byte-order mark. {SAVE_AS_UTF8}"
    if odd and not even.count(0) and odd.count(0) > len(odd) // 2:
        return f"it looks like UTF-16-LE without a byte-order mark. {SAVE_AS_UTF8}"
    return (
        f"it holds NUL bytes, as binary files do (first bytes {excerpt(head[:24])}): "
        "a spreadsheet, an archive or a macOS '._' AppleDouble file named like a text file?"
    )


def first_undecodable(stream: BinaryIO, codec: str) -> tuple[int, bytes, int]:
    """Where `stream` (after any byte-order mark) stops being `codec`: (line number counted
    from 1, that line's bytes up to 400, offset of the first bad byte in them).

    Streams in 64 KiB chunks, so a large file is never held whole; raises ValueError if it all decodes.
    """
    decoder = codecs.getincrementaldecoder(codec)()
    line, tail = 1, ""  # tail: the current line's text so far (its last 200 characters)
    for chunk in iter(partial(stream.read, 1 << 16), b""):
        try:
            text = decoder.decode(chunk)
        except UnicodeDecodeError as e:
            return _located(e, codec, line, tail)
        line += text.count("\n")
        tail = (tail + text).rpartition("\n")[2][-200:]
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as e:
        return _located(e, codec, line, tail)
    raise ValueError("the stream decodes")


def _located(e: UnicodeDecodeError, codec: str, line: int, tail: str) -> tuple[int, bytes, int]:
    before = e.object[: e.start].decode(codec)  # valid up to the error, by definition
    line += before.count("\n")
    prefix = (tail + before).rpartition("\n")[2][-200:].encode(codec)
    rest = e.object[e.start : e.start + 200].split(b"\n", 1)[0]
    return line, prefix + rest, len(prefix)


# What a text file that is not UTF-8 usually is, in the order guessed: Windows-1252 (Excel and
# Notepad on Western-European Windows; Latin-1's printable characters too), Shift-JIS (Japanese
# Windows), Mac Roman (classic Mac OS, older Excel for Mac).
GUESSES = (
    ("cp1252", "Windows-1252 (cp1252, or Latin-1)"),
    ("shift_jis", "Shift-JIS (Japanese Windows)"),
    ("mac_roman", "Mac Roman (older Macs)"),
)


def likely_encoding(line: bytes, at: int) -> str:
    """What a line that is not UTF-8 most likely is, with the text near byte `at` as it would read.

    The first of `GUESSES` in which the bytes read as words (`_reads_as_words`); when
    none does, the file is damaged or in an encoding not worth guessing from one line.
    """
    window = line[max(0, at - 24) : at + 24]
    for codec, label in GUESSES:
        text = _decoded(window, codec)
        if text is not None and _reads_as_words(text):
            return f"it looks like {label}: read so, it says {excerpt(text)}"
    return (
        "it does not read as Windows-1252, Shift-JIS or Mac Roman text either: a damaged file, "
        "or another encoding"
    )


def _decoded(window: bytes, codec: str) -> str | None:
    """`window` in `codec`, allowing its end to cut a two-byte character; None if it is not."""
    for end in (len(window), len(window) - 1):
        try:
            return window[:end].decode(codec)
        except UnicodeDecodeError:
            continue
    return None


def _reads_as_words(text: str) -> bool:
    """Whether `text` reads as words: printable, every character outside ASCII a letter, no
    capital right after a small letter (Mac Roman's `café` read as Windows-1252 is `cafŽ`),
    no CJK character alone between two Latin letters (Mac Roman's `crème` read as Shift-JIS)."""
    if not all(c.isprintable() or c in "\r\n\t" for c in text):
        return False
    for i, c in enumerate(text):
        if c.isascii():
            continue
        before, after = text[i - 1 : i], text[i + 1 : i + 2]
        if not c.isalpha() or (c.isupper() and before.islower()):
            return False
        latin = [n.isascii() and n.isalpha() for n in (before, after)]
        if ord(c) >= 0x2E80 and all(latin):
            return False
    return True


def undecodable_message(name: str, reopen: Callable[[], BinaryIO], codec: str, skip: int) -> str:
    """The error for a file `codec` cannot decode: the file, the line, the likely encoding, the fix.

    `reopen` gives the file's bytes from the start again (decoding reads ahead, so the line is
    found by a second pass); `skip`: length of its byte-order mark.
    """
    with reopen() as stream:
        stream.read(skip)
        try:
            line, raw, at = first_undecodable(stream, codec)
        except ValueError:  # the first pass failed where the second did not: say so plainly
            return f"{name} is not {codec.upper()} text. {SAVE_AS_UTF8}"
    bad = raw[at : at + 4]
    guess = likely_encoding(raw, at) if codec == "utf-8" else "a damaged file?"
    return (
        f"{name} line {line} is not {codec.upper()} text (bytes {excerpt(bad)}); {guess}. "
        f"{SAVE_AS_UTF8}"
    )
