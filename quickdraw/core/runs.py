"""Run folders: the layout of what a training run, an evaluation and a sweep write, and how to find them.

A training run (`python -m quickdraw.train`, one Hydra run folder, or one job of a multirun):

    <run>/checkpoints/best.ckpt     link to the checkpoint with the best val/map3
    <run>/checkpoints/last.ckpt     the last finished epoch (what ckpt_path=last resumes)
    <run>/checkpoints/frozen.ckpt   a model with nothing to train, saved as it is
    <run>/metrics.json              final metrics; "kind": "train"
    <run>/quotas.csv                the adaptive sampler's per-class quotas after each validation
    <run>/tensorboard/              events, and hparams.yaml (the resolved config)
    <run>/.hydra/                   Hydra's config.yaml, overrides.yaml
    <run>/report/                   what quickdraw.evaluation.report derives from the run

An evaluation (`python -m quickdraw.evaluate`) writes `metrics.json` with `"kind": "evaluate"`
and `per_class.csv`; with `prefix=strokes|ink|time` also `prefix_curve.csv`
(`by,fraction,n,top1,top3,map3`), `prefix_curve.png` and `announcements.csv` (the acceptance
rule at each threshold: `quickdraw.metrics.prefix`). A training run with the EarlyGuess
callback keeps the latest validation's `prefix_curve.csv` too. A sweep (`-m`) holds one run folder per job (`0/`, `1/`, ...) and
`summary.csv` / `summary.md` at its root. An Optuna search (`hparams_search=optuna`) names each job
folder by its trial number and writes `<job>/trial.json` (the trial's state: COMPLETE, PRUNED or
FAIL, its value and why it did not complete); a pruned run's metrics.json has `"status": "pruned"`.
Only this module spells these names.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from quickdraw.core.errors import MissingPathError, QuickDrawError, SettingError
from quickdraw.core.files import markdown_table, write_atomic, write_json
from quickdraw.core.outputs import is_within
from quickdraw.core.ranks import launching_process

log = logging.getLogger(__name__)

TRAIN, EVALUATE = "train", "evaluate"
# The key the Optuna sweeper gives each job (`++optuna_trial=N`): its trial's number.
TRIAL_KEY = "optuna_trial"


@dataclass(frozen=True)
class RunDir:
    """One run folder (training or evaluation) and the paths of what it holds."""

    path: Path

    def __init__(self, path: str | Path) -> None:
        object.__setattr__(self, "path", Path(path))

    # -- the layout ----------------------------------------------------------------------------
    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def best_link(self) -> Path:
        return self.checkpoints / "best.ckpt"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last.ckpt"

    @property
    def frozen_checkpoint(self) -> Path:
        return self.checkpoints / "frozen.ckpt"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.json"

    @property
    def quotas_file(self) -> Path:
        return self.path / "quotas.csv"

    @property
    def per_class_file(self) -> Path:
        return self.path / "per_class.csv"

    @property
    def prefix_curve_file(self) -> Path:
        return self.path / "prefix_curve.csv"

    @property
    def announcements_file(self) -> Path:
        return self.path / "announcements.csv"

    @property
    def prefix_curve_figure(self) -> Path:
        return self.path / "prefix_curve.png"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def hparams_file(self) -> Path:
        """The resolved training config as TensorBoard's logger saved it."""
        return self.tensorboard / "hparams.yaml"

    @property
    def hydra_config(self) -> Path:
        return self.path / ".hydra" / "config.yaml"

    @property
    def hydra_overrides(self) -> Path:
        return self.path / ".hydra" / "overrides.yaml"

    @property
    def report_dir(self) -> Path:
        return self.path / "report"

    @property
    def trial_file(self) -> Path:
        """An Optuna search's record of the trial this job ran (written by the sweeper)."""
        return self.path / "trial.json"

    # -- reading and writing ---------------------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        """`metrics.json` as a dict; {} when the run has none (running, failed) or it is unreadable."""
        try:
            return json.loads(self.metrics_file.read_text())
        except (OSError, ValueError):
            return {}

    def write_metrics(self, metrics: dict[str, Any], kind: str) -> Path:
        """`metrics.json` with `kind` (`train` or `evaluate`), written atomically."""
        if kind not in (TRAIN, EVALUATE):
            raise ValueError(f"kind must be {TRAIN!r} or {EVALUATE!r}, got {kind!r}")
        # Strict JSON: a metric that is NaN (nothing to average) is written as null.
        return write_json(self.metrics_file, {**metrics, "kind": kind}, sort_keys=True)

    def trial(self) -> dict[str, Any]:
        """`trial.json` as a dict; {} for a job of no Optuna search (or an unreadable file)."""
        try:
            return json.loads(self.trial_file.read_text())
        except (OSError, ValueError):
            return {}

    def write_trial(self, **trial: Any) -> Path:
        """`trial.json`: `study`, `number`, `state` (Optuna's TrialState name), `value`, `reason`."""
        self.path.mkdir(parents=True, exist_ok=True)  # a trial that failed before Hydra made it
        return write_json(self.trial_file, trial, sort_keys=True)

    @property
    def kind(self) -> str | None:
        """`train`, `evaluate`, or None for a folder that is neither (or not finished).

        Folders written before `metrics.json` had a `kind` are told apart as before: a training
        run also has checkpoints or TensorBoard logs.
        """
        if not self.metrics_file.is_file():
            return None
        kind = self.metrics().get("kind")
        if kind in (TRAIN, EVALUATE):
            return kind
        return TRAIN if self.checkpoints.is_dir() or self.tensorboard.is_dir() else EVALUATE

    def best_checkpoint(self) -> Path | None:
        """`checkpoints/best.ckpt` (resolved), else the `best_ckpt` metrics.json names; None."""
        if self.best_link.is_file():
            return self.best_link.resolve()
        best = self.metrics().get("best_ckpt")
        return Path(best) if best and Path(best).is_file() else None

    def link_best(self, best: str | Path) -> None:
        """Point `checkpoints/best.ckpt` at `best` (a file in the same folder)."""
        self.best_link.unlink(missing_ok=True)
        self.best_link.symlink_to(Path(best).name)

    def started(self) -> float:
        """When the run started: Hydra writes .hydra/config.yaml then; the folder's mtime moves later."""
        marker = self.hydra_config
        return (marker if marker.exists() else self.path).stat().st_mtime

    def resume_checkpoint(self, ckpt_path: str | None) -> str | None:
        """What `ckpt_path` means for this run folder.

        `last`: this folder's last.ckpt (resume an interrupted run in place; an error without one).
        `auto`: the same when it exists, else a fresh start (jobs a cluster may requeue).
        A path: that file. None or "": a fresh start.
        """
        if ckpt_path in (None, ""):
            return None
        last = self.last_checkpoint
        if ckpt_path == "auto":
            return str(last) if last.exists() else None
        if ckpt_path == "last":
            if not last.exists():
                raise MissingPathError(
                    f"ckpt_path=last but {last} does not exist; resume with "
                    "hydra.run.dir=<the run folder> ckpt_path=last"
                )
            return str(last)
        if not Path(ckpt_path).is_file():
            raise MissingPathError(f"ckpt_path={ckpt_path} does not exist")
        return str(ckpt_path)

    def prepare_training(self, ckpt_path: str | None, overwrite: bool = False) -> None:
        """Make sure a training run in this folder cannot mix with an earlier one.

        A folder holding an earlier run's files (`RUN_ARTEFACTS`: checkpoints, TensorBoard,
        metrics...) is refused unless this run resumes it (`ckpt_path=last`, `auto` with a
        last.ckpt, or a checkpoint inside the folder) or `overwrite` deletes them first.
        `ckpt_path=auto` without a last.ckpt starts afresh as it promises, so it deletes the
        leftovers of an attempt that died before its first checkpoint (a requeued cluster job).
        Hydra's `.hydra/` and log of this run, and files no run writes, are never deleted.
        Only the process that launches the run decides: DDP ranks started after it find the
        folder it has begun to fill.
        """
        if not launching_process():
            return
        resumes = self._resumes(ckpt_path)
        if overwrite and (resumes or ckpt_path == "auto"):
            raise SettingError(
                f"overwrite=true would delete the checkpoint ckpt_path={ckpt_path} resumes from "
                f"in {self.path}: resume (ckpt_path alone) or start afresh (overwrite=true alone)"
            )
        earlier = self.earlier_run()
        if resumes or not earlier:
            return
        shown = ", ".join(p.name for p in earlier[:5])
        self.refuse_training_into(ckpt_path, overwrite)
        for path in earlier:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        log.warning("%s: deleted the earlier run's %s to start afresh", self.path, shown)

    def refuse_training_into(self, ckpt_path: str | None, overwrite: bool = False) -> None:
        """Raise [`RunFolderError`][quickdraw.core.runs.RunFolderError] when a training run may not start in this folder: it holds
        an earlier run that this one neither resumes nor overwrites (`ckpt_path=auto` counts as
        overwriting: its promise is a fresh start)."""
        earlier = self.earlier_run()
        if not earlier or self._resumes(ckpt_path) or overwrite or ckpt_path == "auto":
            return
        raise RunFolderError(
            f"{self.path} holds an earlier run ({', '.join(p.name for p in earlier[:5])}): "
            "training into it would mix two runs. Resume it with ckpt_path=last, or start afresh "
            "there with overwrite=true (deletes its checkpoints, TensorBoard logs and metrics), "
            "or leave hydra.run.dir out for a new folder"
        )

    def holds_training_run(self) -> bool:
        """Whether the folder holds a training run: a file or folder only training writes
        (`TRAINING_ONLY`), or a training run's metrics.json (an unreadable one is left to the
        command). No other command may write into it: an evaluation's metrics.json would replace
        the run's, hiding it from the demo and the report."""
        if any(self.path.joinpath(p).exists() for p in TRAINING_ONLY):
            return True
        try:
            return self.kind == TRAIN
        except (OSError, ValueError):
            return False

    def earlier_run(self) -> list[Path]:
        """The files and folders of a training run (`RUN_ARTEFACTS`) the folder holds."""
        return sorted(p for p in map(self.path.joinpath, RUN_ARTEFACTS) if os.path.lexists(p))

    def _resumes(self, ckpt_path: str | None) -> bool:
        """Whether `ckpt_path` continues the run in this folder rather than starting one."""
        if ckpt_path == "last":
            return True
        if ckpt_path == "auto":
            return self.last_checkpoint.exists()
        return bool(ckpt_path) and is_within(ckpt_path, self.path)


class RunFolderError(QuickDrawError, ValueError):
    """Training into a folder that holds an earlier run, neither resumed nor overwritten."""


# What only a training run writes (an evaluation writes metrics.json and per_class.csv too).
TRAINING_ONLY = ("checkpoints", "tensorboard", "csv", "lightning_logs", "quotas.csv")
# Everything a training run writes at the top of its folder (the layout above, the loggers' and
# Lightning's folders): what overwrite=true may delete.
RUN_ARTEFACTS = frozenset(
    {*TRAINING_ONLY, "report", "metrics.json", "per_class.csv", "unreadable.csv",
     "prefix_curve.csv", "prefix_curve.png", "announcements.csv"}
)  # fmt: skip


# -- finding runs ----------------------------------------------------------------------------------
def _natural(path: Path) -> list:
    # Job folders 0, 1, ..., 10 in numeric order.
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", str(path))]


def find_runs(paths: Iterable[str | Path], kind: str = TRAIN) -> list[RunDir]:
    """Finished run folders of `kind` at or under `paths` (runs, sweeps, whole output trees)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            raise MissingPathError(f"{path}: no such folder")
        runs = (RunDir(m.parent) for m in path.rglob("metrics.json"))
        found += sorted((r.path for r in runs if r.kind == kind), key=_natural)
    return [RunDir(p) for p in dict.fromkeys(found)]


def find_prefix_curves(paths: Iterable[str | Path]) -> dict[str, Path]:
    """`prefix_curve.csv` of every finished run or evaluation at or under `paths`, named by
    folder (relative to the folder given, which names it when that is the run itself)."""
    found: dict[str, Path] = {}
    for root in map(Path, paths):
        for run in find_runs([root], TRAIN) + find_runs([root], EVALUATE):
            if run.prefix_curve_file.is_file():
                name = str(run.path.relative_to(root)) if run.path != root else root.name
                found[name if name not in found else str(run.path)] = run.prefix_curve_file
    return found


# -- sweeps ----------------------------------------------------------------------------------------
def summarise_sweep(sweep_dir: Path) -> Path | None:
    """Write summary.csv and summary.md at the sweep's root: each job's overrides and final metrics.

    Overrides that differ between jobs get a column each; those all jobs share head the Markdown.
    Jobs without metrics.json (running, or failed) are listed with empty metrics.
    """
    sweep_dir = Path(sweep_dir)
    found = {p.parents[1] for p in sweep_dir.glob("*/.hydra/overrides.yaml")}
    found |= {p.parent for p in sweep_dir.glob(f"*/{RunDir(sweep_dir).trial_file.name}")}
    jobs = sorted(
        map(RunDir, found), key=lambda job: int(job.path.name) if job.path.name.isdigit() else 0
    )
    if not jobs:
        return None
    overrides = [_job_overrides(job) for job in jobs]
    for job_overrides in overrides:  # the trial number is the job folder's name
        job_overrides.pop(TRIAL_KEY, None)
    shared = {k: v for k, v in overrides[0].items() if all(o.get(k) == v for o in overrides)}
    swept = sorted({k for o in overrides for k in o} - set(shared))
    rows = [
        {
            "job": job.path.name,
            **_trial_columns(job),
            **{k: job_overrides.get(k, "") for k in swept},
            **{k: v for k, v in job.metrics().items() if "/" in k},
        }
        for job, job_overrides in zip(jobs, overrides, strict=True)
    ]
    states = ["state"] if any("state" in r for r in rows) else []
    keys = ["job", *states, *swept]
    keys += sorted({k for r in rows for k in r} - set(keys))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, keys)
    writer.writeheader()
    writer.writerows(rows)
    # Parallel jobs may write at once: each writes a file of its own, then renames it into place.
    write_atomic(sweep_dir / "summary.csv", buf.getvalue())
    shown = ["job", *states, *swept]
    shown += [k for k in keys if k.startswith("test/") or k == "val/map3_best"]
    shown += ["reason"] if any(r.get("reason") for r in rows) else []
    head = f"Every job: `{' '.join(f'{k}={v}' for k, v in shared.items())}`\n\n"
    table = markdown_table(shown, [[_cell(r.get(k, "")) for k in shown] for r in rows])
    write_atomic(sweep_dir / "summary.md", head + table)
    log.info("sweep summary: %s", sweep_dir / "summary.md")
    return sweep_dir / "summary.md"


def _trial_columns(job: RunDir) -> dict[str, str]:
    """`state` of an Optuna trial (COMPLETE, PRUNED, FAIL; RUNNING before the sweeper has told
    the study) and `reason` for a trial that did not complete; nothing outside a search."""
    trial = job.trial()
    if not trial and TRIAL_KEY not in _job_overrides(job):
        return {}
    if not trial:
        return {"state": "RUNNING"}
    return {"state": trial.get("state", ""), "reason": trial.get("reason") or ""}


def _job_overrides(job: RunDir) -> dict[str, str]:
    """The job's command-line overrides; {} for a trial whose job never started."""
    if not job.hydra_overrides.is_file():
        return {}
    return _parse_overrides(OmegaConf.load(job.hydra_overrides))


def _parse_overrides(overrides: Sequence[str]) -> dict[str, str]:
    """`key=value` command-line overrides as a dict (`+`/`++` prefixes dropped)."""
    pairs = (o.split("=", 1) if "=" in o else (o, "") for o in overrides)
    return {k.lstrip("+"): v for k, v in pairs}


def _cell(value: Any) -> str:
    """Metrics to 4 decimals, swept numbers (Optuna's floats) to 4 significant digits; a metric
    that was not finite (NaN, inf: `null` in metrics.json) as "n/a", never Python's "None"."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    try:
        return f"{float(value):.4g}" if "." in str(value) else str(value)
    except ValueError:
        return str(value)


class KeepEarlierRuns(Callback):
    """Hydra callback (`hydra.callbacks`): refuses a `hydra.run.dir` that holds a training run
    this command may not write into *before* Hydra writes its `.hydra/` files and log there,
    which would replace the earlier run's record of its settings (what resuming, `evaluate` and
    the report read) even when the command itself then refuses. Training may enter a run it
    resumes or overwrites ([`RunDir.refuse_training_into`][quickdraw.core.runs.RunDir.refuse_training_into]); other commands never enter one.
    A folder Hydra makes itself (`${unique_dir:}`) is new, so only a given one is looked at.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        given = [o for o in config.hydra.overrides.hydra if o.startswith("hydra.run.dir=")]
        if not given or not launching_process():
            return
        run = RunDir(os.path.expanduser(given[-1].split("=", 1)[1]))
        try:
            if config.get("task_name") == TRAIN:
                run.refuse_training_into(config.get("ckpt_path"), bool(config.get("overwrite")))
            elif run.holds_training_run():
                raise RunFolderError(
                    f"{run.path} holds a training run: "
                    f"{config.get('task_name', 'this command')} would replace its .hydra/ settings "
                    "and mix with its files. Nothing was written. Leave hydra.run.dir out for a "
                    "new folder"
                )
        except RunFolderError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)


class SweepSummary(Callback):
    """Hydra callback (`hydra.callbacks`): the sweep summary after each job, and once all have ended.

    Each job refreshes it so that a long sweep can be followed; the final pass runs in the
    process that launched the sweep, after every job (wherever it ran) has finished.
    """

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if config.hydra.mode == RunMode.MULTIRUN:
            summarise_sweep(Path(config.hydra.sweep.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        summarise_sweep(Path(config.hydra.sweep.dir))
