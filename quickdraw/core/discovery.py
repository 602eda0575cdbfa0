"""Which checkpoint evaluate, predict, export and the demo run, and why: one rule for all four.

`ckpt_path` names a checkpoint (a `.ckpt`, or a model folder written by `format=hub`), `run_dir`
a training run whose best checkpoint is taken; with neither, the best run under `runs_root`:

1. Only **finished** training runs count: a run folder with `metrics.json` of kind `train` and a
   best checkpoint (`checkpoints/best.ckpt`, or the `best_ckpt` its metrics name).
2. **Trial runs are never chosen over a full one**: a run of `experiment=smoke`, tagged `smoke`
   or `debug`, or run with `trainer.fast_dev_run` or `debug=...` (`trial_reason`) is a check that
   the pipeline works, not a model; trial runs are chosen only when no full run exists.
3. **The latest data and classes**: the most recently started of the remaining runs says which
   data (`data.source`, or the generated set and its settings) and which classes count; runs on
   other data or classes are older experiments, not rivals.
4. Among those, the highest **`val/map3_best`** (`val/map3` where a run lacks it; runs without
   either rank last), the most recently started on a tie.

[`choose_checkpoint`][quickdraw.core.discovery.choose_checkpoint] returns the checkpoint with a
sentence saying which run it is and why, which the commands log and the demo shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from quickdraw.core.checkpoints import CheckpointError, read_checkpoint
from quickdraw.core.errors import MissingPathError
from quickdraw.core.runs import TRAIN, RunDir, find_runs

# The validation score that ranks runs (the checkpoint callback's own monitor), then its fallback.
RANKED_BY = ("val/map3_best", "val/map3")
TRIAL_TAGS = ("smoke", "debug")


@dataclass(frozen=True)
class Choice:
    """A checkpoint to run and the reason it was chosen (one sentence, for logs and the page)."""

    path: Path
    reason: str
    run: Path | None = None  # the training run folder it belongs to, when known


def choose_checkpoint(
    ckpt_path: str | Path | None, run_dir: str | Path | None, runs_root: str | Path
) -> Choice:
    """The checkpoint a command runs: `ckpt_path`, else `run_dir`'s best, else `best_run`'s.

    Paths are taken as given (the commands make them absolute). Raises
    [`MissingPathError`][quickdraw.core.errors.MissingPathError] naming the setting when
    `run_dir` has no best checkpoint, or when no finished training run lies under `runs_root`.
    """
    if ckpt_path:
        return Choice(Path(ckpt_path), "the checkpoint given as ckpt_path")
    if not run_dir:
        return best_run(runs_root)
    run = RunDir(run_dir)
    ckpt = run.best_checkpoint()
    if ckpt is None and not run.metrics_file.is_file() and run.hydra_config.is_file():
        resume = " ".join(["python -m quickdraw.train", *_overrides(run)])
        resume = (
            f"resume it with `{resume} hydra.run.dir={run.path} ckpt_path=last`, or pass "
            "ckpt_path= one of its checkpoints/*.ckpt"
            if run.last_checkpoint.is_file()
            else f"or train it again (`{resume}`): it saved no epoch yet"
        )
        raise MissingPathError(
            f"run_dir={run.path} has not finished (no metrics.json): it is still training, or "
            f"was stopped. Wait for it, {resume}"
        )
    if ckpt is None:
        raise MissingPathError(
            f"run_dir={run.path} has no best checkpoint ({run.best_link.relative_to(run.path)}, "
            "or a metrics.json naming best_ckpt); is it a folder written by "
            "`python -m quickdraw.train`?"
        )
    return Choice(ckpt, f"the best checkpoint of run_dir={run.path}", run.path)


def best_run(runs_root: str | Path) -> Choice:
    """The best checkpoint under `runs_root` by the module's rule (see the module docstring)."""
    root = Path(runs_root)
    runs = (
        [r for r in find_runs([root], TRAIN) if r.best_checkpoint() is not None]
        if root.is_dir()
        else []
    )
    if not runs:
        raise MissingPathError(
            f"No trained checkpoint found under {root} (no finished training run). Train one first with "
            "`python -m quickdraw.train` (about a minute: `python -m quickdraw.train "
            "experiment=smoke`), or pass ckpt_path=PATH or run_dir=RUN."
        )
    trials = {r.path: trial_reason(r) for r in runs}
    full = [r for r in runs if not trials[r.path]]
    pool = full or runs
    latest = max(pool, key=RunDir.started)
    data = data_key(latest)
    same = [r for r in pool if data_key(r) == data]
    best = max(same, key=lambda r: (score(r) is not None, score(r) or 0.0, r.started()))
    value = score(best)
    skipped = len(runs) - len(full) if full else 0
    sentence = (
        f"run {best.path.name}: the best val/map3 ({value:.4f})" if value is not None
        else f"run {best.path.name}: the latest (no val/map3 recorded)"
    ) + f" of {len(same)} finished run{'s' * (len(same) != 1)} on the latest data and classes ({data[0]}, {data[1]} classes)"  # fmt: skip
    if skipped:
        sentence += (
            f"; {skipped} trial run{'s' * (skipped != 1)} (smoke, fast_dev_run, debug) passed over"
        )
    elif not full:
        sentence += (
            f"; only trial runs exist ({trials[best.path]}): train a full run to serve a real model"
        )
    if len(same) < len(pool):
        sentence += f"; {len(pool) - len(same)} run(s) on other data or classes not considered"
    return Choice(best.best_checkpoint(), sentence, best.path)


def trial_reason(run: RunDir) -> str | None:
    """Why `run` is a trial run (`experiment=smoke`, a `smoke`/`debug` tag, `trainer.fast_dev_run`,
    `debug=...`), or None for a full run. Read from `metrics.json` and Hydra's `.hydra/` files."""
    if (experiment := run.metrics().get("experiment")) in TRIAL_TAGS:
        return f"experiment={experiment}"
    cfg = _config(run)
    if (name := cfg.get("experiment_name")) in TRIAL_TAGS:
        return f"experiment={name}"
    tags = cfg.get("tags") or []
    if found := [t for t in TRIAL_TAGS if t in list(tags)]:
        return f"tagged {found[0]}"
    if (cfg.get("trainer") or {}).get("fast_dev_run"):
        return "trainer.fast_dev_run"
    if debug := [
        o for o in _overrides(run) if o.lstrip("+").startswith(("debug=", "experiment=smoke"))
    ]:
        return debug[0]
    return None


def data_key(run: RunDir) -> tuple[str, int | str]:
    """(the data a run trained on, its number of classes): runs compare only within one key.

    The data is `data.source` from the run's `.hydra/config.yaml`, or the generated set with its
    settings; the classes come from the best checkpoint's hyperparameters ("?" when unreadable).
    """
    data = _config(run).get("data") or {}
    source = data.get("source")
    if not source:
        source = f"generated set, {data.get('synthetic_per_class', '?')} a class, seed {data.get('synthetic_seed', '?')}"
    try:
        classes = read_checkpoint(run.best_checkpoint()).get("hyper_parameters", {}).get("classes")
    except CheckpointError:
        classes = None
    return str(source), len(classes) if isinstance(classes, list) else "?"


def score(run: RunDir) -> float | None:
    """The run's validation MAP@3 (`RANKED_BY`), None when it recorded none."""
    metrics = run.metrics()
    for key in RANKED_BY:
        if isinstance(metrics.get(key), int | float):
            return float(metrics[key])
    return None


def _overrides(run: RunDir) -> list[str]:
    """The command-line overrides the run was started with (`.hydra/overrides.yaml`)."""
    try:
        found = OmegaConf.load(run.hydra_overrides) if run.hydra_overrides.is_file() else []
        return [str(o) for o in found if not str(o).startswith("ckpt_path=")]
    except (OSError, ValueError):
        return []


def _config(run: RunDir) -> dict:
    try:
        cfg = OmegaConf.load(run.hydra_config) if run.hydra_config.is_file() else {}
        return OmegaConf.to_container(cfg) if cfg else {}
    except (OSError, ValueError):
        return {}
