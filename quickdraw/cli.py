"""The commands: each parses its config (Hydra, or argparse for report and download), calls the
library, reports.

Every command runs as ``python -m quickdraw.<name>`` (a two-line module that calls the function
here) and as a console script (``quickdraw-<name>``, ``[project.scripts]`` in pyproject.toml).
Nothing here computes anything. Every command reports the same way (:func:`command`; ``report``
through :func:`user_message` too): a project error (:class:`~quickdraw.core.errors.QuickDrawError`,
what the library raises for bad input, settings or files), a setting left unset, and running out of
disk space anywhere, is one line naming the file or setting and the fix, with exit code 2; an
override Hydra cannot parse (a path with ``é`` or brackets) gets the quoted form to type instead,
exit code 2; any other exception is a bug and keeps its traceback (so does every error with
``HYDRA_FULL_ERROR=1``). In a multirun (``-m``), errors go to Hydra's sweeper unchanged, which
records the job as failed. ``--help`` shows each command's usage, keys and examples
(``hydra.help.header`` in its config) without importing the library.

evaluate, predict, export and the demo run the checkpoint :func:`checkpoint` finds: ``ckpt_path``,
else ``run_dir``'s best, else the best of the latest training run under ``runs_root``.

======================  ==============================  ==============================================
command                 config                          library
======================  ==============================  ==============================================
``quickdraw-train``     quickdraw/conf/train.yaml       :mod:`quickdraw.training.train`
``quickdraw-convert``   quickdraw/conf/convert.yaml     :mod:`quickdraw.data.convert`,
                                                        :mod:`quickdraw.data.formats.sketchrnn_writer`
``quickdraw-evaluate``  quickdraw/conf/evaluate.yaml    :mod:`quickdraw.evaluation.evaluate`
``quickdraw-predict``   quickdraw/conf/predict.yaml     :mod:`quickdraw.evaluation.submission`
``quickdraw-demo``      quickdraw/conf/demo.yaml        :mod:`quickdraw.serving.app`
``quickdraw-report``    ``--help``                      :mod:`quickdraw.evaluation.report`
``quickdraw-download``  ``--help``                      :mod:`quickdraw.data.download`
``quickdraw-export``    quickdraw/conf/export.yaml      :mod:`quickdraw.deploy.onnx`,
                                                        :mod:`quickdraw.deploy.web`
======================  ==============================  ==============================================
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from quickdraw.core.config import signature_schema
from quickdraw.core.errors import QuickDrawError
from quickdraw.core.files import out_of_space, quiet_full_disk_echoes
from quickdraw.core.runs import find_checkpoint

# The configs ship inside the package: an absolute path, since Hydra reads a relative one as a
# Python package when the command is not the __main__ module.
CONF = str(Path(__file__).with_name("conf"))
log = logging.getLogger("quickdraw")


def absolute(path: str | None) -> str | None:
    """``path`` (a setting's value) as an absolute path: from the directory the command started
    in, and a leading ``~`` expanded, as a shell would have done had the path not been quoted."""
    return path and hydra.utils.to_absolute_path(os.path.expanduser(path))


# Structured-config schemas (quickdraw.core.config): the group whose ``schema`` option each is, the
# class whose signature holds its defaults (imported only when registered: see register), and
# whether the node names it as ``_target_``. Here, not in quickdraw.core: the classes live above it.
SCHEMAS = [
    ("data", "quickdraw.data.datamodule.QuickDrawDataModule", True),
    ("data/augment", "quickdraw.data.augment.StrokeAugment", True),
    ("settings", "quickdraw.data.convert.ConvertSettings", False),
    ("limits", "quickdraw.serving.guesser.Limits", False),
    ("quantization", "quickdraw.deploy.onnx.Quantization", False),
    ("web", "quickdraw.deploy.onnx.WebPage", False),
]
_registered = False


def register(placeholders: bool = False) -> None:
    """Store the schemas (:data:`SCHEMAS`) in Hydra's ConfigStore; every command calls it before
    composing its config, and so do tests and benchmarks that compose one.

    ``placeholders``: store empty nodes instead, unless the real ones are there already. ``--help``
    composes the config but shows none of it, and the real schemas import the classes (Lightning,
    onnx, Gradio): seconds that the help screen does not need.
    """
    global _registered
    if _registered:
        return
    store = ConfigStore.instance().store
    for group, target, with_target in SCHEMAS:
        node = {} if placeholders else signature_schema(get_class(target), with_target)
        store(group=group, name="schema", node=node)
    _registered = not placeholders


def user_message(error: Exception, output: Any = None) -> str | None:
    """The one line a user sees for ``error``, or None for a bug (whose traceback must show).

    The project's errors (:class:`~quickdraw.core.errors.QuickDrawError`, whose messages name the
    file or setting and the fix), a setting left unset, and running out of disk space anywhere
    (the library's writes say which file; a write elsewhere gets ``output``, where the command
    writes). A project error raised while ``hydra.utils.instantiate`` builds an object (a model's
    setting) reaches here wrapped in Hydra's InstantiationException, and is reported as itself.
    """
    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    if isinstance(error, QuickDrawError):
        return _message(error)
    if out_of_space(error):
        where = getattr(error, "filename", None) or output or "the output"
        return (
            f"no space left on the disk while writing {where}: free some space there, or choose "
            "another folder for the output"
        )
    if isinstance(error, MissingMandatoryValue):
        return f"{error.full_key} is not set: give {error.full_key}=VALUE on the command line"
    return None


def _message(error: QuickDrawError) -> str:
    # An OSError built as (errno, message) prints "[Errno 28] message": the message alone.
    if isinstance(error, OSError) and error.strerror and type(error).__str__ is OSError.__str__:
        return error.strerror
    return str(error)


def _in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def command(
    config_name: str,
    writes: Callable[[DictConfig], Any],
    hint: Callable[[DictConfig], str] | None = None,
    renamed: dict[str, str] | None = None,
) -> Callable:
    """``hydra.main`` for ``quickdraw/conf/<config_name>.yaml``, reporting errors as the module docstring says.

    ``writes(cfg)``: where the command writes (named in a disk-full message that has no file);
    ``hint(cfg)``: said after a disk-full message (train: the command that resumes the run);
    ``renamed``: keys this config no longer has, to their new names (one line saying so, exit 2).
    ``cmd.__wrapped__(cfg)`` runs the command, with its error reporting, on a composed config.
    """

    def decorate(task: Callable[[DictConfig], Any]) -> Callable:
        @functools.wraps(task)
        def reported(cfg: DictConfig) -> Any:
            quiet_full_disk_echoes()  # the log file and background writers on a full disk
            try:
                return task(cfg)
            except Exception as error:
                message = user_message(error, _output(writes, cfg))
                if message is None or _in_multirun() or os.environ.get("HYDRA_FULL_ERROR") == "1":
                    raise
                if hint is not None and out_of_space(error):
                    message = f"{message.rstrip('.')}. {hint(cfg)}"
                log.error("%s", message)
                sys.exit(2)

        main = hydra.main(version_base="1.3", config_path=CONF, config_name=config_name)(reported)

        @functools.wraps(main)
        def entry(cfg_passthrough: DictConfig | None = None) -> Any:
            if cfg_passthrough is None:
                check_overrides(sys.argv[1:])
                check_renamed(sys.argv[1:], renamed or {})
            if _only_help(sys.argv[1:]):
                _list_groups_only_when_shown()
            register(placeholders=_only_help(sys.argv[1:]))
            return main(cfg_passthrough)

        entry.__wrapped__ = reported
        return entry

    return decorate


def _output(writes: Callable[[DictConfig], Any], cfg: DictConfig) -> str | None:
    try:
        return str(absolute(str(writes(cfg))))
    except Exception:  # an unset or unresolvable path: the message says "the output"
        return None


def _only_help(argv: Sequence[str]) -> bool:
    """Whether the command line asks for the help screen alone (no ``--cfg``, which shows the config)."""
    return bool({"--help", "-h"} & set(argv)) and not {"--cfg", "-c"} & set(argv)


def _list_groups_only_when_shown() -> None:
    """Make Hydra list the config groups for ``--help`` only if the help template shows them.

    Hydra computes ``$APP_CONFIG_GROUPS`` and ``$HYDRA_CONFIG_GROUPS`` for every help screen,
    used or not (hydra-ecosystem/hydra#2907): two thirds of the seconds ``--help`` took, and the
    commands' templates show neither. ``string.Template`` calls ``str()`` on each value it puts in,
    so a value that computes itself then gives any template, a user's own included, the same text.
    """
    from hydra._internal.hydra import Hydra

    listing = Hydra.format_config_groups
    if getattr(listing, "lazy", False):
        return

    def lazy(self: Hydra, *args: Any, **kwargs: Any) -> Any:
        return _Deferred(lambda: listing(self, *args, **kwargs))

    lazy.lazy = True  # type: ignore[attr-defined]
    Hydra.format_config_groups = lazy  # type: ignore[method-assign]


class _Deferred:
    """A text computed when it is first turned into a string."""

    def __init__(self, make: Callable[[], str]) -> None:
        self.make = make

    def __str__(self) -> str:
        return self.make()


def check_overrides(argv: Sequence[str]) -> None:
    """Exit with code 2 and how to quote it when an override on the command line is one that
    Hydra's grammar refuses unquoted (letters outside ASCII, brackets, ``=``, quotes, ``~``...)."""
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    args, _ = get_args_parser().parse_known_args(list(argv))
    parser = OverridesParser.create()
    for override in args.overrides or []:
        try:
            parsed = parser.parse_overrides([override])[0]
        except OverrideParseException:
            print(f"error: {quoting_hint(override)}", file=sys.stderr)
            sys.exit(2)
        # without -m, commas (a path "a,b.csv") are a sweep Hydra then calls ambiguous, exit 1
        if parsed.is_sweep_override() and not args.multirun and "," in override:
            print(f"error: {quoting_hint(override)}", file=sys.stderr)
            sys.exit(2)


def check_renamed(argv: Sequence[str], renamed: dict[str, str]) -> None:
    """Exit with code 2 naming the new key when an override sets a key that was renamed
    (convert's ``export.to=OUT`` is now ``npz.to=OUT``), instead of Hydra's "not in struct"."""
    for override in argv:
        key = override.partition("=")[0].lstrip("+~")
        old = key.partition(".")[0]
        if "=" in override and old in renamed:
            new = renamed[old] + key[len(old) :]
            print(f"error: {key} is now called {new}: give {new}={override.partition('=')[2]}",
                  file=sys.stderr)  # fmt: skip
            sys.exit(2)


def quoting_hint(override: str) -> str:
    """One line for an override Hydra cannot parse: what it reads unquoted, and the override
    quoted for Hydra (double quotes) inside quotes for the shell (single), ready to paste."""
    key, _, value = override.partition("=")
    if value.startswith("~"):  # inside quotes neither the shell nor Hydra expands it
        value = os.path.expanduser(value)
    if '"' not in value:
        quoted = f'"{value}"'
    elif "'" not in value:
        quoted = f"'{value}'"
    else:
        quoted = '"' + value.replace('"', '\\"') + '"'
    return (
        f"Hydra cannot read the override {override!r}: unquoted, a value may hold only ASCII "
        "letters, digits, spaces and _-+./\\:$%*@?| (no accents, brackets, =, quotes, ~; a comma "
        "makes a sweep). "
        f"Quote the value, keeping the quotes from the shell: {shlex.quote(f'{key}={quoted}')}"
    )


def checkpoint(cfg: DictConfig) -> Path:
    """The checkpoint evaluate, predict, export and the demo run: ``ckpt_path``, else ``run_dir``'s
    best, else the best of the latest training run under ``runs_root``
    (:func:`quickdraw.core.runs.find_checkpoint`)."""
    return find_checkpoint(absolute(cfg.ckpt_path), absolute(cfg.run_dir), absolute(cfg.runs_root))


def _resume_command(cfg: DictConfig) -> str:
    from quickdraw.training.train import resume_hint

    return resume_hint(Path(cfg.paths.output_dir))


@command("train", writes=lambda cfg: cfg.paths.output_dir, hint=_resume_command)
def train(cfg: DictConfig) -> float | None:
    """Fit and test one configuration; returns ``optimized_metric`` for sweepers."""
    from quickdraw.training.train import train as fit

    metrics = fit(cfg)
    value = metrics.get(cfg.get("optimized_metric"))
    return None if value is None else float(value)


@command("convert", writes=lambda cfg: cfg.npz.to or cfg.store, renamed={"export": "npz"})
def convert(cfg: DictConfig) -> None:
    """Convert a source (zip, CSV, ndjson, .bin, .npz, folder) into a Parquet store, or
    (``npz.to=OUT``) write a store out as sketch-rnn ``.npz`` files."""
    from quickdraw.data.convert import ConvertSettings
    from quickdraw.data.convert import convert as run

    if cfg.npz.to:
        return _write_npz(cfg)
    store = absolute(cfg.store)
    settings = ConvertSettings(**OmegaConf.to_container(cfg.settings, resolve=True))
    manifest = run(
        absolute(cfg.source),
        store,
        settings,
        workers=cfg.workers,
        overwrite=cfg.overwrite,
        verify=cfg.verify,
        progress=cfg.progress,
    )
    print(
        f"{store}: {sum(manifest.rows.values())} rows in {len(manifest.classes)} classes "
        f"({', '.join(f'{k} {v}' for k, v in manifest.rows.items())}); "
        f"bad rows {sum(manifest.bad_rows.values())}, filtered {sum(manifest.filtered.values())}, "
        f"repeated key_ids {manifest.duplicates.get('rows', 0)}; "
        f"origin {manifest.origin or 'not recorded'}"
    )


def _write_npz(cfg: DictConfig) -> None:
    from quickdraw.data.formats.sketchrnn_writer import export_store

    store = absolute(cfg.store)
    out = absolute(cfg.npz.to)
    written = export_store(store, out, list(cfg.npz.classes), list(cfg.npz.splits), cfg.progress)
    totals = {s: sum(c[s] for c in written.values()) for s in next(iter(written.values()))}
    print(
        f"{out}: {len(written)} sketch-rnn .npz files "
        f"({', '.join(f'{k} {v}' for k, v in totals.items())} drawings)"
    )


@command("evaluate", writes=lambda cfg: cfg.paths.output_dir)
def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Score a checkpoint on labelled drawings; metrics.json and per_class.csv in the run folder."""
    from quickdraw.evaluation.evaluate import evaluate as run
    from quickdraw.evaluation.evaluate import require_labels
    from quickdraw.models.loading import load_model

    if cfg.input:  # before the model is loaded: no labels, nothing to score
        require_labels(absolute(cfg.input), absolute(cfg.labels))
    ckpt = checkpoint(cfg)
    model = load_model(ckpt, cfg.device)
    scores, result = run(
        model,
        cfg.paths.output_dir,
        input=absolute(cfg.input),
        labels=absolute(cfg.labels),
        store=absolute(cfg.store),
        split=cfg.split,
        batch_size=cfg.batch_size,
        ckpt_path=str(ckpt),
        tta=cfg.tta,
        balance=cfg.balance,
        prior=absolute(cfg.prior),
        prefix=cfg.prefix,
        accept_threshold=cfg.accept_threshold,
    )
    m, wrong = result, result["unreadable_counted_wrong"]
    print(
        f"{result['drawings']} drawings: top-1 {m['test/acc']:.4f}  top-3 {m['test/acc3']:.4f}  "
        f"MAP@3 {m['test/map3']:.4f}" + (f" ({wrong} unreadable, counted wrong)" if wrong else "")
    )
    if "early/auc_top1" in m:
        print(
            f"prefixes by {cfg.prefix}: early AUC top-1 {m['early/auc_top1']:.4f}  right before the "
            f"end {m['early/correct_before_end']:.4f}  median first stable "
            f"{m['early/median_fraction_first_stable']:.2f}  (prefix_curve.csv)"
        )
    print(f"per-class results: {Path(cfg.paths.output_dir) / 'per_class.csv'}")
    return {k: v for k, v in m.items() if k.startswith("test/")}


@command("predict", writes=lambda cfg: cfg.output)
def predict(cfg: DictConfig) -> None:
    """Write a Kaggle submission (top-3 words per key_id) for an unlabelled input file."""
    from quickdraw.deploy.runtime import load_backend
    from quickdraw.evaluation.submission import unreadable_path, write_submission

    output, source = Path(absolute(cfg.output)), absolute(cfg.input)
    ckpt = checkpoint(cfg)
    model = load_backend(ckpt, cfg.backend, cfg.device, int8=cfg.int8)
    n, stats = write_submission(
        model,
        source,
        output,
        cfg.batch_size,
        cfg.strict,
        tta=cfg.tta,
        balance=cfg.balance,
        prior=absolute(cfg.prior),
        ckpt_path=str(ckpt),
    )
    skipped = sum(stats.bad.values()) - len(stats.unreadable)
    print(
        f"{output}: {n} predictions"
        + (
            f"; {len(stats.unreadable)} unreadable drawings got the fallback guess "
            f"(listed in {unreadable_path(output)})"
            if stats.unreadable
            else ""
        )
        + (f"; {skipped} rows without a usable key_id skipped" if skipped else "")
    )


@command("demo", writes=lambda cfg: cfg.paths.output_dir)
def demo(cfg: DictConfig) -> None:
    """Serve the sketchpad for a checkpoint (or the latest training run's best)."""
    import torch

    from quickdraw.serving.app import build_app, launch, load_guesser

    torch.set_num_threads(cfg.threads)
    ckpt = checkpoint(cfg)
    guesser = load_guesser(cfg, ckpt)
    log.info("serving %s: %s", ckpt, guesser.description)
    launch(build_app(guesser, str(ckpt), cfg.live_ms, cfg.accept_threshold), cfg)


@command("export", writes=lambda cfg: cfg.out or cfg.paths.output_dir)
def export(cfg: DictConfig) -> None:
    """Export a checkpoint to ONNX (``quantize=int8``: also int8), or (``format=web``) as a static
    page that guesses in the browser."""
    from quickdraw.deploy.onnx import Quantization, WebPage, export_checkpoint

    quantization = OmegaConf.to_container(cfg.quantization, resolve=True)
    web = OmegaConf.to_container(cfg.web, resolve=True)
    out = export_checkpoint(
        checkpoint(cfg),
        absolute(cfg.out) or cfg.paths.output_dir,
        cfg.format,
        cfg.quantize,
        Quantization(**{**quantization, "store": absolute(quantization["store"])}),
        WebPage(**web),
    )
    print(out)


def report(argv: Sequence[str] | None = None) -> None:
    """Compare training runs: figures, CSVs and report.md (``quickdraw-report --help``)."""
    parser = argparse.ArgumentParser(
        prog="python -m quickdraw.report",
        description="Compare training runs: learning curves, test scores, per-class accuracy, "
        "adaptive quotas and the most-confused pairs, as PNGs, CSVs and report.md (in "
        "FOLDER/report unless --out says otherwise).",
        epilog="examples:\n"
        "  python -m quickdraw.report outputs/train/multiruns/2026-01-01_12-00-00\n"
        "  python -m quickdraw.report outputs/train/runs/A outputs/train/runs/B --out cmp --no-eval",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("folders", nargs="+", type=Path, help="run folders, sweep folders or any folder above them")
    add("--out", type=Path, help="where to write (default: FOLDER/report; needed with several)")
    add("--split", default="test", choices=["val", "test"], help="split scored per class")
    add("--pairs", type=int, default=6, help="confused pairs drawn")
    add("--device", default="cpu", help="where checkpoints run (cpu, cuda)")
    add(
        "--no-eval",
        dest="evaluate",
        action="store_false",
        help="skip re-scoring checkpoints: no per-class results or confusions",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("tensorboard").setLevel(logging.WARNING)  # one line per event file otherwise
    from quickdraw.evaluation.report import write_report  # after --help: pandas, matplotlib, torch

    a = args
    path = reported(
        lambda: write_report(a.folders, a.out, a.split, a.device, a.pairs, a.evaluate),
        a.out or f"{a.folders[0]}/report",
    )
    print(path)


def download(argv: Sequence[str] | None = None) -> None:
    """Fetch Google's per-category files or Kaggle's zip (``quickdraw-download --help``)."""
    from quickdraw.data.download import main

    sys.exit(reported(lambda: main(argv)))


def reported(task: Callable[[], Any], output: Any = None) -> Any:
    """``task()`` of an argparse command, its errors reported as :func:`command` reports them:
    one line on stderr and exit code 2 for a user's error, the traceback for a bug."""
    try:
        return task()
    except Exception as error:
        message = user_message(error, output)
        if message is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
