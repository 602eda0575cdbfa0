"""The commands: each parses its config (Hydra, or argparse for report), calls the library, reports.

Every command runs as ``python -m quickdraw.<name>`` (a two-line module that calls the function
here) and as a console script (``quickdraw-<name>``, ``[project.scripts]`` in pyproject.toml).
Nothing here computes anything: errors the library raises for bad input become one log line
and exit code 2.

==============================  ==================================  ============================
command                         config                              library
==============================  ==================================  ============================
``quickdraw-train``             conf/train.yaml                     :mod:`quickdraw.training`
``quickdraw-convert``           conf/convert.yaml                   :mod:`quickdraw.data.convert`,
                                                                    :mod:`quickdraw.data.formats.export`
``quickdraw-evaluate``          conf/evaluate.yaml                  :mod:`quickdraw.evaluation`
``quickdraw-predict``           conf/predict.yaml                   :mod:`quickdraw.submission`
``quickdraw-demo``              conf/demo.yaml                      :mod:`quickdraw.app`
``quickdraw-report``            ``--help``                          :mod:`quickdraw.report`
``quickdraw-download``          ``--help``                          :mod:`quickdraw.data.download`
``quickdraw-export``            conf/export.yaml                    :mod:`quickdraw.onnx_export`,
                                                                    :mod:`quickdraw.web`
==============================  ==================================  ============================
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

import quickdraw  # registers the ${project_root:} resolver
from quickdraw import configs
from quickdraw.checkpoints import CheckpointError

# The checkout's conf/ (editable installs), else ./conf: an absolute path, since Hydra reads a
# relative one as a Python package when the command is not the __main__ module.
CONF = str(Path(quickdraw.project_root()) / "conf")
log = logging.getLogger("quickdraw")
configs.register()


def _fail(error: Exception) -> None:
    log.error("%s", error)
    sys.exit(2)


@hydra.main(version_base="1.3", config_path=CONF, config_name="train")
def train(cfg: DictConfig) -> float | None:
    """Fit and test one configuration; returns ``optimized_metric`` for sweepers."""
    from quickdraw.training import train as fit

    metrics = fit(cfg)
    value = metrics.get(cfg.get("optimized_metric"))
    return None if value is None else float(value)


@hydra.main(version_base="1.3", config_path=CONF, config_name="convert")
def convert(cfg: DictConfig) -> None:
    """Convert a source (zip, CSV, ndjson, .bin, .npz, folder) into a Parquet store, or
    (``export.to=OUT``) export a store to sketch-rnn ``.npz`` files."""
    from quickdraw.data.convert import ConvertSettings
    from quickdraw.data.convert import convert as run
    from quickdraw.data.readers import QuickDrawFormatError

    if cfg.export.to:
        return _export_stroke3(cfg)
    store = hydra.utils.to_absolute_path(cfg.store)
    try:
        settings = ConvertSettings(**OmegaConf.to_container(cfg.settings, resolve=True))
        manifest = run(
            hydra.utils.to_absolute_path(cfg.source),
            store,
            settings,
            workers=cfg.workers,
            overwrite=cfg.overwrite,
            verify=cfg.verify,
            progress=cfg.progress,
        )
    except (QuickDrawFormatError, FileNotFoundError, ValueError) as e:
        _fail(e)
    print(
        f"{store}: {sum(manifest.rows.values())} rows in {len(manifest.classes)} classes "
        f"({', '.join(f'{k} {v}' for k, v in manifest.rows.items())}); "
        f"bad rows {sum(manifest.bad_rows.values())}, filtered {sum(manifest.filtered.values())}; "
        f"origin {manifest.origin or 'not recorded'}"
    )


def _export_stroke3(cfg: DictConfig) -> None:
    from quickdraw.data.formats.export import export_store
    from quickdraw.data.store import StoreError

    store = hydra.utils.to_absolute_path(cfg.store)
    out = hydra.utils.to_absolute_path(cfg.export.to)
    try:
        written = export_store(
            store, out, list(cfg.export.classes), list(cfg.export.splits), cfg.progress
        )
    except (StoreError, ValueError) as e:
        _fail(e)
    totals = {s: sum(c[s] for c in written.values()) for s in next(iter(written.values()))}
    print(
        f"{out}: {len(written)} sketch-rnn .npz files "
        f"({', '.join(f'{k} {v}' for k, v in totals.items())} drawings)"
    )


@hydra.main(version_base="1.3", config_path=CONF, config_name="evaluate")
def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Score a checkpoint on labelled drawings; metrics.json and per_class.csv in the run folder."""
    from quickdraw.checkpoints import load_model
    from quickdraw.data.store import StoreError
    from quickdraw.evaluation import evaluate as run

    absolute = lambda p: p and hydra.utils.to_absolute_path(p)  # noqa: E731
    try:
        model = load_model(absolute(cfg.ckpt_path), cfg.device)
        scores, result = run(
            model,
            cfg.paths.output_dir,
            input=absolute(cfg.input),
            labels=absolute(cfg.labels),
            store=absolute(cfg.store),
            split=cfg.split,
            batch_size=cfg.batch_size,
            ckpt_path=cfg.ckpt_path,
            tta=cfg.tta,
            balance=cfg.balance,
            prior=absolute(cfg.prior),
            prefix=cfg.prefix,
            accept_threshold=cfg.accept_threshold,
        )
    except (CheckpointError, StoreError, ValueError, FileNotFoundError) as e:
        _fail(e)
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


@hydra.main(version_base="1.3", config_path=CONF, config_name="predict")
def predict(cfg: DictConfig) -> None:
    """Write a Kaggle submission (top-3 words per key_id) for an unlabelled input file."""
    from quickdraw.onnx_backend import load_backend
    from quickdraw.submission import unreadable_path, write_submission

    output = Path(hydra.utils.to_absolute_path(cfg.output))
    try:
        model = load_backend(
            hydra.utils.to_absolute_path(cfg.ckpt_path), cfg.backend, cfg.device, int8=cfg.int8
        )
        n, stats = write_submission(
            model,
            hydra.utils.to_absolute_path(cfg.input),
            output,
            cfg.batch_size,
            cfg.strict,
            tta=cfg.tta,
            balance=cfg.balance,
            prior=cfg.prior and hydra.utils.to_absolute_path(cfg.prior),
        )
    except (CheckpointError, ValueError, FileNotFoundError) as e:
        _fail(e)
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


@hydra.main(version_base="1.3", config_path=CONF, config_name="demo")
def demo(cfg: DictConfig) -> None:
    """Serve the sketchpad for a checkpoint (or the latest training run's best)."""
    import torch

    from quickdraw.app import build_app, launch, load_predictor

    torch.set_num_threads(cfg.threads)
    try:
        predictor, ckpt = load_predictor(cfg)
    except (CheckpointError, FileNotFoundError, ValueError) as e:
        _fail(e)
    log.info("serving %s: %s", ckpt, predictor.description)
    launch(build_app(predictor, str(ckpt), cfg.live_ms, cfg.accept_threshold), cfg)


@hydra.main(version_base="1.3", config_path=CONF, config_name="export")
def export(cfg: DictConfig) -> None:
    """Export a checkpoint to ONNX (``quantize=int8``: also int8), or (``format=web``) as a static
    page that guesses in the browser."""
    from quickdraw.data.store import StoreError
    from quickdraw.onnx_export import ExportError, Quantization, WebPage, export_checkpoint
    from quickdraw.web import WebBuildError

    absolute = lambda p: p and hydra.utils.to_absolute_path(p)  # noqa: E731
    quantization = OmegaConf.to_container(cfg.quantization, resolve=True)
    web = OmegaConf.to_container(cfg.web, resolve=True)
    try:
        out = export_checkpoint(
            absolute(cfg.ckpt_path),
            absolute(cfg.out) or cfg.paths.output_dir,
            cfg.format,
            cfg.quantize,
            Quantization(**{**quantization, "store": absolute(quantization["store"])}),
            WebPage(**web),
        )
    except (CheckpointError, ExportError, StoreError, WebBuildError, ValueError) as e:
        _fail(e)
    print(out)


def report(argv: Sequence[str] | None = None) -> None:
    """Compare training runs: figures, CSVs and report.md (``quickdraw-report --help``)."""
    from quickdraw.report import write_report

    parser = argparse.ArgumentParser(
        prog="python -m quickdraw.report",
        description="Compare training runs: learning curves, test scores, per-class accuracy, "
        "adaptive quotas and the most-confused pairs, as PNGs, CSVs and report.md.",
        epilog="example: python -m quickdraw.report outputs/train/multiruns/2026-01-01_12-00-00",
    )
    add = parser.add_argument
    add("folders", nargs="+", type=Path, help="run folders, sweep folders or any folder above them")
    add("--out", type=Path, help="where to write (default: FOLDER/report)")
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
    try:
        path = write_report(
            args.folders, args.out, args.split, args.device, args.pairs, args.evaluate
        )
    except (FileNotFoundError, ValueError) as e:
        parser.exit(2, f"error: {e}\n")
    print(path)


def download(argv: Sequence[str] | None = None) -> None:
    """Fetch Google's per-category files or Kaggle's zip (``quickdraw-download --help``)."""
    from quickdraw.data.download import main

    sys.exit(main(argv))
