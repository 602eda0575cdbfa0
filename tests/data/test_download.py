"""Download tooling against a local HTTP server that drops, stalls and ignores Range on demand."""

from __future__ import annotations

import importlib.util
import io
import json
import random
import socket
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest

from quickdraw.data.conversion import convert
from quickdraw.data.convert_file import ConvertSettings
from quickdraw.data.download import category_url, download_all, fetch, load_categories, main
from quickdraw.data.formats import binary

WORDS = ("cat", "The Eiffel Tower", "teddy-bear")
CUT = 50_000  # bytes a faulty response sends before the connection goes away

# Every network wait in this file is bounded by socket timeouts; pytest-timeout adds a hard stop.
pytestmark = (
    [pytest.mark.timeout(60)] if importlib.util.find_spec("pytest_timeout") is not None else []
)


def _ndjson(word: str, seed: int) -> bytes:
    rng = random.Random(seed)
    lines = []
    while sum(map(len, lines)) < 120_000 + 60_000 * seed:
        strokes = [[[rng.randrange(256) for _ in range(12)] for _ in range(2)] for _ in range(4)]
        row = {"word": word, "countrycode": "NA", "recognized": True, "drawing": strokes}
        lines.append(json.dumps(row) + "\n")
    return "".join(lines).encode()


@dataclass
class ServerState:
    files: dict[str, bytes]
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    drops: dict[str, int] = field(default_factory=dict)  # url path -> GETs still to cut short
    stall: bool = False  # hold a cut response open so the client's socket times out
    ignore_range: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)

    def gets(self, path: str) -> list[str | None]:
        return [rng for method, p, rng in self.requests if method == "GET" and p == path]


class _Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    def log_message(self, *args: object) -> None:
        pass  # keep pytest output clean

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        state: ServerState = self.server.state  # type: ignore[attr-defined]
        path, rng = unquote(urlsplit(self.path).path), self.headers.get("Range")
        with state.lock:
            state.requests.append((self.command, path, rng))
            cut = body and state.drops.get(path, 0) > 0
            if cut:
                state.drops[path] -= 1
        data = state.files.get(path)
        if data is None:
            self.send_error(404)
            return
        start = int(rng.removeprefix("bytes=").rstrip("-")) if rng and not state.ignore_range else 0
        if start >= len(data) > 0:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if not body:
            return
        if not cut:
            self.wfile.write(data[start:])
            return
        # Promise the whole body, send part of it, then hang up (or go silent first).
        self.wfile.write(data[start : start + CUT])
        self.wfile.flush()
        if state.stall:
            state.release.wait(10)
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, ServerState]]:
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    files = {f"/simplified/{w}.ndjson": _ndjson(w, i) for i, w in enumerate(WORDS)}
    state = ServerState(files)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
        assert not thread.is_alive()


def _fetch(base: str, word: str, out: Path, **kwargs: object) -> tuple[str, int]:
    options = {"retries": 3, "timeout": 5.0, "backoff": 0.0} | kwargs
    return fetch(category_url(word, base_url=base), out / f"{word}.ndjson", **options)  # type: ignore[arg-type]


def test_categories_resource_lists_googles_345() -> None:
    names = load_categories()
    assert len(names) == len(set(names)) == 345
    assert {"The Eiffel Tower", "teddy-bear", "t-shirt", "zigzag"} <= set(names)
    assert all(n == n.strip() and n for n in names)


def test_categories_cover_kaggle_sample(sample_dir) -> None:
    with zipfile.ZipFile(sample_dir / "train_simplified.zip") as zf:
        words = {Path(n).stem for n in zf.namelist() if n.endswith(".csv")}
    assert len(words) == 344
    assert words <= set(load_categories())


def test_category_url_quotes_spaces() -> None:
    url = category_url("The Eiffel Tower", "raw", "http://h/full/")
    assert url == "http://h/full/raw/The%20Eiffel%20Tower.ndjson"


def test_cli_downloads_byte_identical_then_skips(
    server: tuple[str, ServerState], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, state = server
    argv = ["--base-url", base, "--out", str(tmp_path), "--categories", ",".join(WORDS)]
    assert main([*argv, "--workers", "3", "--no-progress"]) == 0
    for w in WORDS:
        assert (tmp_path / f"{w}.ndjson").read_bytes() == state.files[f"/simplified/{w}.ndjson"]
    assert not list(tmp_path.glob("*.part"))
    assert "3 downloaded, 0 skipped, 0 failed" in capsys.readouterr().out

    state.requests.clear()
    assert main([*argv, "--no-progress"]) == 0
    assert "0 downloaded, 3 skipped" in capsys.readouterr().out
    assert all(method == "HEAD" for method, _, _ in state.requests)


def test_dropped_connection_resumes_from_partial_size(
    server: tuple[str, ServerState], tmp_path: Path
) -> None:
    base, state = server
    path = "/simplified/The Eiffel Tower.ndjson"
    state.drops[path] = 2
    assert _fetch(base, "The Eiffel Tower", tmp_path)[0] == "downloaded"
    # Each retry asks for the bytes after the ones it already has, never the whole file again.
    assert state.gets(path) == [None, f"bytes={CUT}-", f"bytes={2 * CUT}-"]
    assert (tmp_path / "The Eiffel Tower.ndjson").read_bytes() == state.files[path]


def test_socket_timeout_retries_and_resumes(
    server: tuple[str, ServerState], tmp_path: Path
) -> None:
    base, state = server
    state.drops["/simplified/cat.ndjson"], state.stall = 1, True
    assert _fetch(base, "cat", tmp_path, timeout=0.5)[0] == "downloaded"
    assert state.gets("/simplified/cat.ndjson") == [None, f"bytes={CUT}-"]
    assert (tmp_path / "cat.ndjson").read_bytes() == state.files["/simplified/cat.ndjson"]


def test_existing_part_file_resumes(server: tuple[str, ServerState], tmp_path: Path) -> None:
    base, state = server
    data = state.files["/simplified/cat.ndjson"]
    (tmp_path / "cat.ndjson.part").write_bytes(data[:12_345])
    assert _fetch(base, "cat", tmp_path) == ("downloaded", len(data) - 12_345)
    assert state.gets("/simplified/cat.ndjson") == ["bytes=12345-"]
    assert (tmp_path / "cat.ndjson").read_bytes() == data
    assert not (tmp_path / "cat.ndjson.part").exists()


def test_complete_part_file_is_renamed_without_get(
    server: tuple[str, ServerState], tmp_path: Path
) -> None:
    base, state = server
    data = state.files["/simplified/cat.ndjson"]
    (tmp_path / "cat.ndjson.part").write_bytes(data)
    assert _fetch(base, "cat", tmp_path) == ("downloaded", 0)
    assert state.gets("/simplified/cat.ndjson") == []
    assert (tmp_path / "cat.ndjson").read_bytes() == data


def test_complete_file_is_skipped_without_get(
    server: tuple[str, ServerState], tmp_path: Path
) -> None:
    base, state = server
    (tmp_path / "cat.ndjson").write_bytes(state.files["/simplified/cat.ndjson"])
    assert _fetch(base, "cat", tmp_path) == ("skipped", 0)
    assert state.gets("/simplified/cat.ndjson") == []


def test_wrong_size_final_file_is_replaced(server: tuple[str, ServerState], tmp_path: Path) -> None:
    base, state = server
    (tmp_path / "cat.ndjson").write_bytes(b"stale")
    assert _fetch(base, "cat", tmp_path)[0] == "downloaded"
    assert (tmp_path / "cat.ndjson").read_bytes() == state.files["/simplified/cat.ndjson"]


def test_server_ignoring_range_restarts_from_zero(
    server: tuple[str, ServerState], tmp_path: Path
) -> None:
    base, state = server
    state.ignore_range = True
    (tmp_path / "cat.ndjson.part").write_bytes(b"x" * 1000)  # would corrupt the file if appended to
    assert _fetch(base, "cat", tmp_path)[0] == "downloaded"
    assert state.gets("/simplified/cat.ndjson") == ["bytes=1000-"]
    assert (tmp_path / "cat.ndjson").read_bytes() == state.files["/simplified/cat.ndjson"]


def test_short_body_never_leaves_final_file(
    server: tuple[str, ServerState], tmp_path: Path
) -> None:
    base, state = server
    state.drops["/simplified/cat.ndjson"] = 1_000  # every response ends early
    (result,) = download_all(
        ["cat"], tmp_path, base_url=base, retries=1, timeout=5.0, backoff=0.0, progress=False
    )
    assert result.status == "failed" and f"got {2 * CUT} of" in result.error
    assert not (tmp_path / "cat.ndjson").exists()
    # What did arrive is kept for the next run to resume from.
    assert (tmp_path / "cat.ndjson.part").stat().st_size == 2 * CUT


def test_missing_category_is_reported_and_others_download(
    server: tuple[str, ServerState], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, state = server
    argv = ["--base-url", base, "--out", str(tmp_path), "--categories", "teddy bear,cat"]
    assert main([*argv, "--retries", "0", "--no-progress"]) == 1
    out = capsys.readouterr()
    report = out.out + out.err
    assert "'teddy bear' not found (HTTP 404)" in report
    assert f"{base}/simplified/teddy%20bear.ndjson" in report
    assert "Did you mean: teddy-bear" in report
    assert "1 downloaded, 0 skipped, 1 failed" in out.out
    assert (tmp_path / "cat.ndjson").read_bytes() == state.files["/simplified/cat.ndjson"]


def _fake_kaggle(bin_dir: Path, body: str) -> None:
    bin_dir.mkdir()
    script = bin_dir / "kaggle"
    script.write_text(f"#!{sys.executable}\nimport json, pathlib, sys\n{body}\n")
    script.chmod(0o755)


def test_kaggle_source_runs_official_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    record, out = tmp_path / "argv.json", tmp_path / "data"
    _fake_kaggle(
        tmp_path / "bin",
        f"pathlib.Path({str(record)!r}).write_text(json.dumps(sys.argv[1:]))\n"
        "out = pathlib.Path(sys.argv[sys.argv.index('-p') + 1])\n"
        "(out / sys.argv[sys.argv.index('-f') + 1]).write_bytes(b'PK')",
    )
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert main(["--source", "kaggle", "--out", str(out)]) == 0
    assert json.loads(record.read_text()) == [
        "competitions", "download", "-c", "quickdraw-doodle-recognition",
        "-f", "train_simplified.zip", "-p", str(out),
    ]  # fmt: skip
    assert f"source={out / 'train_simplified.zip'}" in capsys.readouterr().out


def test_kaggle_failure_propagates_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_kaggle(tmp_path / "bin", "sys.stderr.write('403 - Forbidden\\n')\nsys.exit(1)")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert main(["--source", "kaggle", "--out", str(tmp_path / "data")]) == 1
    err = capsys.readouterr().err
    assert "exited with status 1: 403 - Forbidden" in err
    assert "rules" in err


def test_kaggle_missing_explains_setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["--source", "kaggle", "--out", str(tmp_path / "data")]) == 1
    err = capsys.readouterr().err
    for hint in ("pip install kaggle", "~/.kaggle/kaggle.json", "KAGGLE_USERNAME", "rules"):
        assert hint in err


def test_command_shows_help() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "quickdraw.download", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "--categories-file" in proc.stdout and "quickdraw.convert" in proc.stdout


def _binary_and_npz() -> dict[str, bytes]:
    """A .bin and a sketch-rnn .npz as the bucket serves them, each longer than a cut response."""
    rng = random.Random(7)
    records = b"".join(
        binary.encode(i + 1, [[[rng.randrange(256)] * 2 for _ in range(20)]] * 3)
        for i in range(1_000)
    )
    drawings = np.empty(2_000, object)
    for i in range(len(drawings)):
        drawings[i] = np.array(
            [[rng.randrange(-50, 50), rng.randrange(-50, 50), i % 2]] * 9, np.int16
        )
    npz = io.BytesIO()
    np.savez(npz, train=drawings[:1_800], valid=drawings[1_800:1_900], test=drawings[1_900:])
    return {"/full/binary/cat.bin": records, "/sketchrnn/The Eiffel Tower.npz": npz.getvalue()}


@pytest.mark.parametrize(
    "kind, word, path",
    [
        ("binary", "cat", "/full/binary/cat.bin"),
        ("sketchrnn", "The Eiffel Tower", "/sketchrnn/The Eiffel Tower.npz"),
    ],
)
def test_binary_and_sketchrnn_kinds_resume_and_convert(
    server: tuple[str, ServerState], tmp_path: Path, kind: str, word: str, path: str
) -> None:
    base, state = server
    state.files.update(_binary_and_npz())
    state.drops[path] = 1
    argv = ["--kind", kind, "--base-url", f"{base}/full", "--out", str(tmp_path / "dl")]
    assert (
        main([*argv, "--categories", word, "--retries", "2", "--backoff", "0", "--no-progress"])
        == 0
    )
    assert state.gets(path) == [None, f"bytes={CUT}-"]  # the dropped response resumed
    suffix = Path(path).suffix
    assert (tmp_path / "dl" / f"{word}{suffix}").read_bytes() == state.files[path]
    assert not list((tmp_path / "dl").glob("*.part"))
    m = convert(tmp_path / "dl", tmp_path / "qd", ConvertSettings(), progress=False)
    assert m.classes == [word] and not m.bad_rows
    assert (
        sum(m.rows.values()) == m.sources[0]["rows_read"] == (1_000 if kind == "binary" else 2_000)
    )
