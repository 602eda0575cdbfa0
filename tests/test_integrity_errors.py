"""Errors that say what happened (issue 27, section 5): a full disk anywhere, checkpoints of
another version, overrides Hydra cannot parse, an empty calibration split, strict JSON, a
forgotten `labels=`, one error wrapper for every command, and a page served on loopback only.

The full-disk tests run twice over: on a real, tiny tmpfs where mounting one is permitted (as
root), and with writes made to fail with `ENOSPC` or PyTorch's own error for every command.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import open_dict

from quickdraw import cli
from quickdraw.core import commands
from quickdraw.core.checkpoints import VERSION_KEY, CheckpointError
from quickdraw.core.files import (
    DiskFullError,
    json_text,
    out_of_space,
    quiet_full_disk_echoes,
    write_atomic,
    write_json,
)
from quickdraw.models.loading import load_model
from quickdraw.training.checkpoint_io import AtomicCheckpointIO
from tests.helpers.checkpoints import save_untrained, train_one_step
from tests.helpers.commands import run_module
from tests.helpers.configs import RESNET, compose_config
from tests.helpers.drawings import SQUARE, kaggle_row, write_csv
from tests.helpers.paths import leftovers

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["cat", "dog"]
# What PyTorch's zip writer raises when a write finds no room (torch 2.x, a tmpfs full).
TORCH_FULL = "[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"


def torch_error(context: BaseException | None = None) -> RuntimeError:
    """PyTorch's failed-write error, raised while handling `context` as torch raises it."""
    try:
        try:
            if context is not None:
                raise context
        finally:
            raise RuntimeError(TORCH_FULL)
    except RuntimeError as e:
        return e


# -- recognising a full disk -------------------------------------------------------------------
@pytest.mark.parametrize(
    "error, full",
    [
        (OSError(errno.ENOSPC, "No space left on device"), True),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
        (OSError(errno.EFBIG, "File too large"), True),
        (torch_error(OSError(errno.ENOSPC, "No space left on device")), True),
        (torch_error(), True),  # torch.save to a path: no OSError behind it
        (RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed"), True),
        (OSError(errno.EIO, "Input/output error"), False),
        (torch_error(OSError(errno.EIO, "Input/output error")), False),
        (RuntimeError("shape mismatch"), False),
        (ValueError("No space left on device"), False),
    ],
)
def test_out_of_space_is_told_from_other_errors(error, full):
    assert out_of_space(error) is full


# -- a real full disk --------------------------------------------------------------------------
def test_a_checkpoint_onto_a_full_disk_says_so_and_leaves_nothing(full_disk):
    """The real PyTorch writer on a real full filesystem: its RuntimeError becomes the message."""
    from quickdraw.core.checkpoints import CheckpointWriteError

    path = full_disk / "checkpoints" / "last.ckpt"
    with pytest.raises(CheckpointWriteError) as err:
        AtomicCheckpointIO().save_checkpoint({"w": torch.zeros(200_000)}, path)
    assert err.value.errno == errno.ENOSPC
    assert "disk is full" in err.value.strerror and "ckpt_path=last" in err.value.strerror
    assert str(path) in err.value.strerror
    assert not path.exists() and leftovers(full_disk) == []
    assert os.statvfs(full_disk).f_bavail * os.statvfs(full_disk).f_frsize >= 16 * 1024


def test_ctrl_c_during_a_checkpoint_write_is_an_interruption_not_a_full_disk(tmp_path, monkeypatch):
    """PyTorch's writer turns a KeyboardInterrupt in a write into its failed-write RuntimeError."""
    from quickdraw.core.files import out_of_space

    class Interrupted:  # the file torch.save writes to, Ctrl-C arriving at its third write
        def __init__(self, f):
            self.f, self.writes = f, 0

        def write(self, data):
            self.writes += 1
            if self.writes == 3:
                raise KeyboardInterrupt
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, f: real_save(obj, Interrupted(f)))
    path = tmp_path / "checkpoints" / "last.ckpt"
    path.parent.mkdir()
    with pytest.raises(KeyboardInterrupt):
        AtomicCheckpointIO().save_checkpoint({"a": torch.zeros(99), "b": torch.ones(99)}, path)
    monkeypatch.undo()
    assert not path.exists() and leftovers(path.parent) == []
    try:
        raise RuntimeError(TORCH_FULL) from KeyboardInterrupt()
    except RuntimeError as error:
        assert not out_of_space(error)


def test_an_atomic_write_onto_a_full_disk_names_the_file(full_disk):
    path = full_disk / "metrics.json"
    with pytest.raises(DiskFullError) as err:
        write_atomic(path, os.urandom(400_000))
    assert str(path) in str(err.value) and "Free some space" in str(err.value)
    assert [p.name for p in full_disk.iterdir()] == ["filler"]


@pytest.mark.parametrize("workers", [1, 2])
def test_convert_onto_a_full_disk_is_one_line_and_leaves_no_temporary_file(
    full_disk, tiny_data_dir, tmp_path, workers
):
    store = full_disk / "store"
    done = subprocess.run(
        [sys.executable, "-m", "quickdraw.convert", f"source={tiny_data_dir / 'csv'}",
         f"store={store}", f"workers={workers}", "progress=false",
         f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-3000:]
    said = done.stdout + done.stderr  # Hydra logs to stdout
    assert "Traceback" not in said
    errors = [line for line in said.splitlines() if "Free some space" in line]
    assert len(errors) == 1, said[-3000:]
    assert str(store) in errors[0]
    assert leftovers(full_disk) == []


def test_stroke3_export_onto_a_full_disk_is_one_line(full_disk, tiny_store, tmp_path):
    out = full_disk / "npz"
    done = subprocess.run(
        [sys.executable, "-m", "quickdraw.convert", f"store={tiny_store}", f"npz.to={out}",
         "progress=false", f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-3000:]
    said = done.stdout + done.stderr
    assert "Traceback" not in said
    assert re.search(rf"cannot write {re.escape(str(out))}/\w+\.npz: No space left", said), said
    assert leftovers(full_disk) == []


# -- every command, its writes made to fail -----------------------------------------------------
def fail_writes_of(monkeypatch, name: str, error: OSError | None = None) -> None:
    """Make the sync of any file whose name holds `name` fail with `error` (ENOSPC), as a
    filesystem that allocates late (NFS, quotas, compressed or thin volumes) reports it."""
    real_fsync = os.fsync
    error = error or OSError(errno.ENOSPC, "No space left on device")

    def fsync(fd: int) -> None:
        if name in os.readlink(f"/proc/self/fd/{fd}"):
            raise error
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def one_error(caplog) -> str:
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert "\n" not in errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return save_untrained(tmp_path_factory.mktemp("ckpt") / "model.ckpt", RESNET, classes=CLASSES)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    rows = [kaggle_row(k, CLASSES[k % 2], SQUARE) for k in range(1, 9)]
    return write_csv(tmp_path_factory.mktemp("input") / "labelled.csv", rows)


@pytest.fixture(scope="module")
def cat_dog_store(tmp_path_factory) -> Path:
    """A store of cat and dog whose val split is empty (`val_fraction=0`)."""
    from quickdraw.data.conversion import convert
    from quickdraw.data.convert_file import ConvertSettings

    root = tmp_path_factory.mktemp("catdog")
    for i, word in enumerate(CLASSES):
        rows = [kaggle_row(100 * i + k, word, SQUARE) for k in range(40)]
        write_csv(root / "src" / f"{word}.csv", rows)
    convert(root / "src", root / "store", ConvertSettings(val_fraction=0.0), progress=False)
    return root / "store"


def command_config(name: str, out: Path, *overrides: str):
    cfg = compose_config(name, list(overrides))
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    return cfg


def full_disk_cases(ckpt: Path, labelled: Path, store: Path, tiny: Path, out: Path) -> dict:
    """command -> (its config, the file whose writing fails)."""
    export = ("export", [f"ckpt_path={ckpt}", f"out={out}"])
    return {
        "convert": (("convert", [f"source={labelled}", f"store={out}", "progress=false"]), "manifest.json"),
        "stroke-3 export": (("convert", [f"store={tiny}", f"npz.to={out}", "progress=false"]), ".npz"),
        "evaluate": (("evaluate", [f"ckpt_path={ckpt}", f"input={labelled}"]), "metrics.json"),
        "evaluate per_class.csv": (("evaluate", [f"ckpt_path={ckpt}", f"input={labelled}"]), "per_class.csv"),
        "predict": (("predict", [f"ckpt_path={ckpt}", f"input={labelled}", f"output={out / 'sub.csv'}"]), "sub.csv"),
        "export onnx": (export, "model.onnx"),
        "export sidecar": (export, "model.json"),
        "export int8": ((export[0], [*export[1], "quantize=int8", "quantization.mode=dynamic"]), "model.int8.onnx"),
        "export web": ((export[0], [*export[1], "format=web"]), "page.json"),
        "export web runtime": ((export[0], [*export[1], "format=web"]), ".wasm"),
    }  # fmt: skip


@pytest.mark.parametrize(
    "case", ["convert", "stroke-3 export", "evaluate", "evaluate per_class.csv", "predict",
             "export onnx", "export sidecar", "export int8", "export web", "export web runtime"],
)  # fmt: skip
def test_every_command_out_of_space_is_one_line_naming_the_file(
    case, ckpt, labelled, cat_dog_store, tiny_store, tmp_path, monkeypatch, caplog
):
    out = tmp_path / "out"
    (name, overrides), failing = full_disk_cases(ckpt, labelled, cat_dog_store, tiny_store, out)[
        case
    ]
    if case.startswith("export web") and not (ROOT / "build" / "web-deps").is_dir():
        pytest.skip("onnxruntime-web not installed (make web-deps)")
    pytest.importorskip("onnxruntime") if name == "export" else None
    fail_writes_of(monkeypatch, failing)
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as stop:
        getattr(cli, name).__wrapped__(command_config(name, tmp_path / "run", *overrides))
    assert stop.value.code == 2
    message = one_error(caplog)
    assert failing in message and "No space left on device" in message, message
    assert "Free some space" in message
    assert leftovers(tmp_path) == []
    if case.startswith("export web"):  # no half page: none of the page's files stays behind
        from quickdraw.deploy.web import ORT_FILES, PAD_FILES, PAGE_FILES

        page = [*PAGE_FILES, *PAD_FILES, "page.json", *(f"ort/{n}" for n in ORT_FILES)]
        assert [n for n in page if (out / n).exists()] == []


def test_train_whose_checkpoint_finds_no_room_says_how_to_resume(
    tiny_config, tmp_path, monkeypatch, caplog
):
    """torch.save raising its own RuntimeError (no OSError behind it) mid-training."""

    def full(*args, **kwargs):
        raise RuntimeError(TORCH_FULL)

    monkeypatch.setattr(torch, "save", full)
    cfg = tiny_config(tmp_path, "experiment=smoke", "trainer.max_epochs=1")
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as stop:
        cli.train.__wrapped__(cfg)
    assert stop.value.code == 2
    message = one_error(caplog)
    assert "cannot write checkpoint" in message and "disk is full" in message
    assert "ckpt_path=last" in message and str(tmp_path) in message
    assert leftovers(tmp_path) == []


def test_report_out_of_space_is_one_line(smoke_run, tmp_path, monkeypatch, capsys):
    fail_writes_of(monkeypatch, "comparison.csv")
    with pytest.raises(SystemExit) as stop:
        cli.report([str(smoke_run), "--out", str(tmp_path / "report"), "--no-eval"])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1
    assert "comparison.csv" in err[0] and "Free some space" in err[0]
    assert leftovers(tmp_path) == []


def test_a_full_disk_under_the_run_folder_is_one_line_and_no_logging_traceback(full_disk, ckpt, labelled):  # fmt: skip
    """With the run folder (and its cli.log) on the full disk, logging printed "--- Logging error
    ---" and a 40-line traceback for each line it could not write, the one-line message among them."""
    done = run_module("quickdraw.evaluate", f"ckpt_path={ckpt}", f"input={labelled}", cwd=full_disk)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output[-3000:]
    assert "Traceback" not in output and "Logging error" not in output, output[-3000:]
    errors = [line for line in output.splitlines() if "[ERROR]" in line]
    assert (
        len(errors) == 1
        and "No space left on device" in errors[0]
        and "Free some space" in errors[0]
    )
    assert leftovers(full_disk) == []


def test_a_log_file_on_a_full_disk_is_silent_but_other_log_errors_are_not(full_disk, capsys):
    handler = logging.FileHandler(full_disk / "cli.log")
    logger = logging.getLogger("quickdraw.test_log_file")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        quiet_full_disk_echoes(logger)
        logger.error("%s", "x" * 100_000)  # a page more than the disk has
        assert "Logging error" not in capsys.readouterr().err
        logger.error("%d", "not a number")  # a bug in a log call still shows
        assert "Logging error" in capsys.readouterr().err
    finally:
        logger.removeHandler(handler)
        handler.close()
        threading.excepthook = threading.__excepthook__


def test_a_background_writer_on_a_full_disk_is_one_warning(caplog, capsys):
    """TensorBoard's event writer thread printed "Exception in thread" and its traceback."""

    def full():
        raise OSError(errno.ENOSPC, "No space left on device")

    def bug():
        raise ZeroDivisionError("a bug")

    quiet_full_disk_echoes(logging.getLogger("quickdraw.test_threads"))
    try:
        with caplog.at_level(logging.WARNING):
            for target in (full, bug):
                thread = threading.Thread(target=target, name=target.__name__)
                thread.start()
                thread.join()
    finally:
        threading.excepthook = threading.__excepthook__
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "a background writer (thread full) could not write its file: the disk is full"
    ]
    err = capsys.readouterr().err
    assert "ZeroDivisionError: a bug" in err and "ENOSPC" not in err and "No space" not in err


def test_other_write_errors_are_not_called_a_full_disk(ckpt, labelled, tmp_path, monkeypatch):
    """EIO is a failing disk, not a full one: it keeps its traceback (a bug or hardware)."""
    fail_writes_of(monkeypatch, "metrics.json", OSError(errno.EIO, "Input/output error"))
    cfg = command_config("evaluate", tmp_path, f"ckpt_path={ckpt}", f"input={labelled}")
    with pytest.raises(OSError, match="Input/output error"):
        cli.evaluate.__wrapped__(cfg)
    assert leftovers(tmp_path) == []


# -- checkpoints of another version ---------------------------------------------------------------
@pytest.mark.parametrize(
    "where, target",
    [
        ("net", "quickdraw.models.components.NoSuchNet"),
        ("net", "quickdraw.models.zoo.vit.ViT"),  # a whole module this version lacks
        ("optimizer", "torch.optim.NoSuchOpt"),
        ("optimizer", "torch.optim.zoo.Lion"),
    ],
)
@pytest.mark.parametrize(
    "version, said",
    [
        ("9.0.0", "quickdraw 9.0.0 (newer than this one)"),
        ("0.0.1", "quickdraw 0.0.1 (older than this one)"),
        (None, "an unknown version of quickdraw"),
    ],
)
def test_a_class_this_version_lacks_is_named_with_the_version_that_wrote_it(
    ckpt, tmp_path, where, target, version, said
):
    state = torch.load(ckpt, weights_only=True)
    state["hyper_parameters"][where] = {**state["hyper_parameters"][where], "_target_": target}
    if version:
        state[VERSION_KEY] = version
    path = tmp_path / "other.ckpt"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    message = str(err.value)
    assert said in message and target in message and "does not have" in message
    assert "outside this project" not in message and "refusing to load" in message


def test_checkpoints_record_the_version_that_wrote_them(tmp_path):
    import quickdraw

    path = train_one_step(RESNET, tmp_path / "m.ckpt")  # saved by Lightning, as training does
    assert torch.load(path, weights_only=True)[VERSION_KEY] == quickdraw.__version__


# -- overrides Hydra cannot parse ---------------------------------------------------------------
NAMES = ["Téléchargements", "日本語", "straße", "My Files", "cat (1)", "~backup", "a=b", "a,b", "1,2",
         "[draft]", "it's", 'say "hi"', "x{y}", "a#b", "a!b", "a&b", "a;b", "plain-name_1.2"]  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_each_path_either_parses_or_gets_a_hint_that_does(name, capsys):
    value = f"/home/me/{name}/x.zip"
    override = f"source={value}"
    parser = OverridesParser.create()
    try:
        commands.check_overrides([override])
    except SystemExit as stop:
        assert stop.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "Quote the value" in err[0], err
        typed = shlex.split(err[0].rsplit(": ", 1)[1])  # what the shell passes on
        assert len(typed) == 1
        assert parser.parse_overrides(typed)[0].value() == value, typed
        return
    parsed = parser.parse_overrides([override])[0]
    assert not parsed.is_sweep_override()  # a comma made a sweep, then Hydra's "Ambiguous value"
    assert parsed.value() == value.strip()


@pytest.mark.parametrize("command", ["train", "convert", "evaluate", "predict", "export", "demo"])
def test_every_hydra_command_gives_the_hint(command, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [command, "source=/home/me/Téléchargements/x.zip"])
    with pytest.raises(SystemExit) as stop:
        getattr(cli, command)()
    assert stop.value.code == 2
    assert "'source=\"/home/me/Téléchargements/x.zip\"'" in capsys.readouterr().err


def test_a_comma_is_a_sweep_only_with_multirun(capsys):
    commands.check_overrides(["-m", "optimizer.lr=0.1,0.01"])  # a sweep, as asked
    with pytest.raises(SystemExit) as stop:
        commands.check_overrides(["labels=/data/a,b.csv"])
    assert stop.value.code == 2 and "'labels=\"/data/a,b.csv\"'" in capsys.readouterr().err


def test_a_tilde_is_expanded_in_the_hint():
    assert f'"{Path.home()}/Téléchargements/x.zip"' in commands.quoting_hint(
        "source=~/Téléchargements/x.zip"
    )


@pytest.mark.parametrize("setting", ["output", "input", "ckpt_path"])
def test_a_quoted_tilde_is_the_home_folder(setting, ckpt, labelled, tmp_path, monkeypatch):
    """`'output="~/sub.csv"'`: the shell leaves a quoted `~` alone, so the command expands it
    (never a folder literally named `~` in the current directory)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    paths = {"output": home / "sub.csv", "input": labelled, "ckpt_path": ckpt}
    if setting != "output":
        paths[setting] = Path(shutil.copy(paths[setting], home))
    typed = {k: f'"~/{v.name}"' if k == setting else str(v) for k, v in paths.items()}
    cfg = command_config("predict", tmp_path / "run", *(f"{k}={v}" for k, v in typed.items()))
    cli.predict.__wrapped__(cfg)
    assert (home / "sub.csv").is_file() and not (tmp_path / "~").exists()


def test_the_quoted_form_converts_from_a_non_ascii_folder(tmp_path):
    folder = tmp_path / "Téléchargements" / "cat (1)"
    write_csv(folder / "cat.csv", [kaggle_row(k, "cat", SQUARE) for k in range(1, 6)])
    store = tmp_path / "magasin é"
    run = [sys.executable, "-m", "quickdraw.convert", f"hydra.run.dir={tmp_path / 'run'}",
           "progress=false"]  # fmt: skip
    refused = subprocess.run([*run, f"source={folder}", f"store={store}"], capture_output=True,
                             text=True, timeout=300, cwd=tmp_path)  # fmt: skip
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    typed = shlex.split(refused.stderr.strip().splitlines()[-1].rsplit(": ", 1)[1])
    done = subprocess.run([*run, *typed, f'store="{store}"'], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((store / "manifest.json").read_text())["classes"] == ["cat"]


# -- an empty calibration split ------------------------------------------------------------------
def test_int8_calibration_on_an_empty_split_names_the_split(ckpt, cat_dog_store, tmp_path, caplog):
    pytest.importorskip("onnxruntime")
    cfg = command_config("export", tmp_path / "run", f"ckpt_path={ckpt}", f"out={tmp_path}",
                         "quantize=int8", f"quantization.store={cat_dog_store}")  # fmt: skip
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as stop:
        cli.export.__wrapped__(cfg)
    message = one_error(caplog)
    assert stop.value.code == 2
    assert "quantization.split=val" in message and "holds no drawings" in message
    assert "val 0" in message and "set quantization.store" not in message
    assert not (tmp_path / "model.int8.onnx").exists() and leftovers(tmp_path) == []


# -- strict JSON ---------------------------------------------------------------------------------
def strict_load(text: str):
    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


NON_FINITE = {"acc": math.nan, "loss": [math.inf, -math.inf, 1.5], "n": np.float32("nan"), "k": 3}


def manifest_text(manifest_class, folder: Path, value: dict) -> str:
    """A manifest holding `value` in its bad-row counts, saved and read back."""
    manifest_class(classes=["cat"], counts={"train": [1]}, bad_rows=value).save(folder)
    return json.dumps(json.loads((folder / "manifest.json").read_text())["bad_rows"])


def writers(tmp_path: Path) -> dict:
    """Every JSON writer of the project, each as `(write(value), read back text)`."""
    from quickdraw.core.runs import RunDir
    from quickdraw.data.schema import Manifest

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    return {
        "write_json": lambda v: write_json(tmp_path / "a.json", v).read_text(),
        "store manifest": lambda v: manifest_text(Manifest, tmp_path, v),
        "metrics.json": lambda v: run.write_metrics(v, "evaluate").read_text(),
        "report cache": lambda v: json_text(v, indent=None),
    }  # fmt: skip


@pytest.mark.parametrize("writer", ["write_json", "store manifest", "metrics.json", "report cache"])
def test_json_written_is_strict_with_null_for_non_finite_numbers(writer, tmp_path):
    data = strict_load(writers(tmp_path)[writer](NON_FINITE))
    assert data["acc"] is None and data["loss"] == [None, None, 1.5] and data["n"] is None
    assert data["k"] == 3


def test_a_sweep_summary_shows_a_diverged_jobs_metrics_as_n_a(tmp_path):
    """A job whose loss went NaN has `null` in its strict metrics.json: "n/a", never "None"."""
    from quickdraw.core.runs import summarise_sweep

    for job, lr, acc in (("0", "0.1", 0.5), ("1", "10", float("nan"))):
        (tmp_path / job / ".hydra").mkdir(parents=True)
        (tmp_path / job / ".hydra" / "overrides.yaml").write_text(f"- optimizer.lr={lr}\n")
        write_json(tmp_path / job / "metrics.json", {"test/acc": acc, "test/loss": -math.inf})
    strict_load((tmp_path / "1" / "metrics.json").read_text())
    table = summarise_sweep(tmp_path).read_text()
    assert "| 1 | 10 | n/a | n/a |" in table and "None" not in table and "nan" not in table.lower()
    assert (tmp_path / "summary.csv").read_text().splitlines()[2] == "1,10,,"


def test_no_json_is_written_outside_the_one_writer():
    """Every json.dump(s) in the package is in quickdraw/core/files.py (strict, allow_nan=False)."""
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in (ROOT / "quickdraw").rglob("*.py")
        if path.name != "files.py" or path.parent.name != "core"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bjson\.dumps?\(", line)
    ]
    assert found == []
    assert "allow_nan=False" in (ROOT / "quickdraw" / "core" / "files.py").read_text()


# -- a forgotten labels= -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["csv", "ndjson"])
def test_evaluate_without_labels_says_so_before_loading_the_model(
    kind, ckpt, tmp_path, monkeypatch, caplog
):
    if kind == "csv":
        path = tmp_path / "test_simplified.csv"
        path.write_text('key_id,countrycode,drawing\n1,US,"[[[0,255],[0,255]]]"\n')
    else:
        path = tmp_path / "test.ndjson"
        path.write_text('{"key_id": "1", "drawing": [[[0, 255], [0, 255]]]}\n')

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded")

    # composed first: registering the schemas imports modules that bind load_model by name
    cfg = command_config("evaluate", tmp_path / "run", f"ckpt_path={ckpt}", f"input={path}")
    monkeypatch.setattr("quickdraw.models.loading.load_model", never)
    with caplog.at_level(logging.WARNING), pytest.raises(SystemExit) as stop:
        cli.evaluate.__wrapped__(cfg)
    assert stop.value.code == 2
    assert "pass labels=FILE" in one_error(caplog) and "no word column" in caplog.text
    assert [r for r in caplog.records if r.levelno == logging.WARNING] == []


# -- one error wrapper for every command ---------------------------------------------------------
def test_train_reports_a_bad_setting_in_one_line(tiny_config, tmp_path, caplog):
    cfg = tiny_config(tmp_path, "experiment=smoke", "++trainer.sync_batchnorm=true")
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as stop:
        cli.train.__wrapped__(cfg)
    assert stop.value.code == 2 and "sync_batchnorm" in one_error(caplog)


def test_a_bug_keeps_its_traceback(monkeypatch, tiny_config, tmp_path):
    def bug(cfg):
        raise KeyError("a bug")

    monkeypatch.setattr("quickdraw.training.fit.train", bug)
    with pytest.raises(KeyError, match="a bug"):
        cli.train.__wrapped__(tiny_config(tmp_path))


def test_a_missing_setting_is_named(tmp_path, caplog):
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as stop:
        cli.predict.__wrapped__(command_config("predict", tmp_path))
    message = one_error(caplog)
    assert stop.value.code == 2 and "input is not set: give input=VALUE" in message


def test_cli_has_no_hand_written_error_tuples():
    """The six Hydra commands share one wrapper; neither it nor them lists error types."""
    cli_source = (ROOT / "quickdraw" / "cli.py").read_text()
    wrapper = (ROOT / "quickdraw" / "core" / "commands.py").read_text()
    assert not re.search(r"except \(\w+Error", cli_source + wrapper)
    assert cli_source.count("@command(") == 6


@pytest.mark.slow
def test_a_failed_job_of_a_sweep_is_reported_to_the_sweeper(tiny_overrides, tmp_path):
    """In a multirun the error goes to Hydra (the job fails, as before), not to sys.exit."""
    sweep = tmp_path / "sweep"
    done = subprocess.run(
        [sys.executable, "-m", "quickdraw.train", "-m", *tiny_overrides, "experiment=smoke",
         "++trainer.sync_batchnorm=true", f"hydra.sweep.dir={sweep}"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Error executing job with overrides" in done.stderr
    assert "sync_batchnorm" in done.stderr


# -- the page served on loopback only ------------------------------------------------------------
def test_serving_the_page_is_suggested_on_loopback_only(ckpt, tmp_path, caplog):
    if not (ROOT / "build" / "web-deps").is_dir():
        pytest.skip("onnxruntime-web not installed (make web-deps)")
    pytest.importorskip("onnxruntime")
    cfg = command_config("export", tmp_path / "run", f"ckpt_path={ckpt}", f"out={tmp_path / 'page'}",
                         "format=web")  # fmt: skip
    with caplog.at_level(logging.INFO):
        cli.export.__wrapped__(cfg)
    assert f"python -m http.server --bind 127.0.0.1 -d {tmp_path / 'page'} 8000" in caplog.text


def test_every_suggestion_of_http_server_binds_loopback():
    texts = [ROOT / "README.md", *(ROOT / "quickdraw/conf").rglob("*.yaml"), *(ROOT / "docs").rglob("*.md"),
             *(ROOT / "quickdraw").rglob("*.py"), *(ROOT / "quickdraw" / "web").glob("*.*")]  # fmt: skip
    bare = [
        f"{p.relative_to(ROOT)}: {line.strip()[:80]}"
        for p in texts
        for line in p.read_text(errors="replace").splitlines()
        if re.search(r"http\.server -d", line)
    ]
    assert bare == []
