"""The commands: each parses its config (Hydra, or argparse for report and download), calls the
library, reports.

Every command runs as `python -m quickdraw.<name>` (a two-line module that calls the function
here) and as a console script (`quickdraw-<name>`, `[project.scripts]` in pyproject.toml).
Nothing here computes anything. Every command reports errors the same way: one line and exit
code 2 for a user's error, the traceback for a bug
([`quickdraw.core.commands`][quickdraw.core.commands] says which is which). `--help` shows each
command's usage, keys and examples (`hydra.help.header` in its config) without importing the
library.

evaluate, predict, export and the demo run the checkpoint [`chosen`][quickdraw.cli.chosen] finds: `ckpt_path`,
else `run_dir`'s best, else the best finished run under `runs_root`
([`quickdraw.core.discovery`][quickdraw.core.discovery] states the rule).

| command | config | library |
| --- | --- | --- |
| `quickdraw-train` | quickdraw/conf/train.yaml | [`quickdraw.training.fit`][quickdraw.training.fit] |
| `quickdraw-convert` | quickdraw/conf/convert.yaml | [`quickdraw.data.conversion`][quickdraw.data.conversion], [`quickdraw.data.formats.sketchrnn_writer`][quickdraw.data.formats.sketchrnn_writer] |
| `quickdraw-evaluate` | quickdraw/conf/evaluate.yaml | [`quickdraw.evaluation.score`][quickdraw.evaluation.score] |
| `quickdraw-predict` | quickdraw/conf/predict.yaml | [`quickdraw.evaluation.submission`][quickdraw.evaluation.submission] |
| `quickdraw-demo` | quickdraw/conf/demo.yaml | [`quickdraw.serving.app`][quickdraw.serving.app] |
| `quickdraw-report` | `--help` | [`quickdraw.evaluation.report`][quickdraw.evaluation.report] |
| `quickdraw-download` | `--help` | [`quickdraw.data.download`][quickdraw.data.download] |
| `quickdraw-export` | quickdraw/conf/export.yaml | [`quickdraw.deploy.onnx`][quickdraw.deploy.onnx], [`quickdraw.deploy.web`][quickdraw.deploy.web] |
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hydra.core.config_store import ConfigStore
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from quickdraw.core import commands
from quickdraw.core.commands import absolute, reported
from quickdraw.core.config import signature_schema

# The configs ship inside the package: an absolute path, since Hydra reads a relative one as a
# Python package when the command is not the __main__ module.
CONF = str(Path(__file__).with_name("conf"))
log = logging.getLogger("quickdraw")

if TYPE_CHECKING:
    from quickdraw.core.discovery import Choice


# Structured-config schemas (quickdraw.core.config): the group whose `schema` option each is, the
# class whose signature holds its defaults (imported only when registered: see register), and
# whether the node names it as `_target_`. Here, not in quickdraw.core: the classes live above it.
SCHEMAS = [
    ("data", "quickdraw.data.datamodule.QuickDrawDataModule", True),
    ("data/augment", "quickdraw.data.augment.StrokeAugment", True),
    ("settings", "quickdraw.data.convert_file.ConvertSettings", False),
    ("limits", "quickdraw.serving.guesser.Limits", False),
    ("quantization", "quickdraw.deploy.onnx.Quantization", False),
    ("web", "quickdraw.deploy.onnx.WebPage", False),
]
_registered = False


def register(placeholders: bool = False) -> None:
    """Store the schemas (`SCHEMAS`) in Hydra's ConfigStore; every command calls it before
    composing its config, and so do tests and benchmarks that compose one.

    `placeholders`: store empty nodes instead, unless the real ones are there already. `--help`
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


# Each command: hydra.main on its config in CONF, the schemas stored first, errors as one line.
command = functools.partial(commands.command, config_path=CONF, prepare=register)


def checkpoint(cfg: DictConfig) -> Path:
    """The checkpoint evaluate, predict and export run ([`chosen`][quickdraw.cli.chosen])."""
    return chosen(cfg).path


def chosen(cfg: DictConfig) -> Choice:
    """`ckpt_path`, else `run_dir`'s best, else the best finished run under `runs_root` by the
    rule of [`quickdraw.core.discovery`][quickdraw.core.discovery], with the reason, logged."""
    # Imported here, not at the top: discovery reads checkpoints with torch, and `--help` of every
    # command must load no torch (tests/test_cli.py holds it to that).
    from quickdraw.core.discovery import choose_checkpoint

    choice = choose_checkpoint(
        absolute(cfg.ckpt_path), absolute(cfg.run_dir), absolute(cfg.runs_root)
    )
    log.info("checkpoint: %s (%s)", choice.path, choice.reason)
    return choice


def _resume_command(cfg: DictConfig) -> str:
    from quickdraw.training.fit import resume_hint

    return resume_hint(Path(cfg.paths.output_dir))


@command("train", writes=lambda cfg: cfg.paths.output_dir, hint=_resume_command)
def train(cfg: DictConfig) -> float | None:
    """Fit and test one configuration; returns `optimized_metric` for sweepers."""
    from quickdraw.training.fit import train as fit

    metrics = fit(cfg)
    value = metrics.get(cfg.get("optimized_metric"))
    return None if value is None else float(value)


@command("convert", writes=lambda cfg: cfg.npz.to or cfg.store, renamed={"export": "npz"})
def convert(cfg: DictConfig) -> None:
    """Convert a source (zip, CSV, ndjson, .bin, .npz, folder) into a Parquet store, or
    (`npz.to=OUT`) write a store out as sketch-rnn `.npz` files."""
    from quickdraw.data.conversion import convert as run
    from quickdraw.data.convert_file import ConvertSettings

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
    from quickdraw.data.formats.sketchrnn_writer import write_npz

    store = absolute(cfg.store)
    out = absolute(cfg.npz.to)
    written = write_npz(store, out, list(cfg.npz.classes), list(cfg.npz.splits), cfg.progress)
    totals = {s: sum(c[s] for c in written.values()) for s in next(iter(written.values()))}
    print(
        f"{out}: {len(written)} sketch-rnn .npz files "
        f"({', '.join(f'{k} {v}' for k, v in totals.items())} drawings)"
    )


@command("evaluate", writes=lambda cfg: cfg.paths.output_dir)
def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Score a checkpoint on labelled drawings; metrics.json and per_class.csv in the run folder."""
    from quickdraw.evaluation.score import evaluate as run
    from quickdraw.evaluation.score import require_labels
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
    if "announcements" in m:
        print("announcing at p >= threshold: share announced / announced wrongly / median share "
              "drawn at the first right announcement (announcements.csv)")  # fmt: skip
        for row in m["announcements"]:
            median = row["median_fraction_right"]
            print(
                f"  {row['threshold']:.2f}: {row['announced']:.3f} / {row['announced_wrongly']:.3f}"
                f" / {'n/a' if median != median else f'{median:.2f}'}"
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
    choice = chosen(cfg)
    guesser = load_guesser(cfg, choice.path)
    log.info("serving %s: %s", choice.path, guesser.description)
    app = build_app(guesser, str(choice.path), cfg.live_ms, cfg.accept_threshold, choice.reason)
    launch(app, cfg)


@command("export", writes=lambda cfg: cfg.out or cfg.paths.output_dir)
def export(cfg: DictConfig) -> None:
    """Export a checkpoint to ONNX (`quantize=int8`: also int8), (`format=web`) as a static
    page that guesses in the browser, or (`format=hub`) as a model folder to share."""
    from quickdraw.deploy.onnx import ExportError, Quantization, WebPage, export_checkpoint

    if cfg.format == "hub":
        from quickdraw.deploy.hub import export_hub

        if cfg.quantize:
            raise ExportError(
                "format=hub ships the fp32 ONNX model; for int8, export format=onnx "
                "quantize=int8 into another folder"
            )
        print(export_hub(checkpoint(cfg), absolute(cfg.out) or cfg.paths.output_dir))
        return

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
    """Compare training runs: figures, CSVs and report.md (`quickdraw-report --help`)."""
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
    """Fetch Google's per-category files or Kaggle's zip (`quickdraw-download --help`)."""
    from quickdraw.data.download import main

    sys.exit(reported(lambda: main(argv)))
