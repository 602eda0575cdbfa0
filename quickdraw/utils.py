"""Small helpers the entry points share: instantiating config groups, run folders, resume paths, sweep summaries."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a config group that has a ``_target_`` (callbacks, loggers)."""
    if not group:
        return []
    return [
        hydra.utils.instantiate(c)
        for c in group.values()
        if isinstance(c, DictConfig) and "_target_" in c
    ]


def output_dir(cfg: DictConfig) -> Path:
    """This run's folder: ``paths.output_dir`` (Hydra's run dir; tests that compose configs set it)."""
    path = Path(cfg.paths.output_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def resolve_ckpt_path(ckpt_path: str | None, out: Path) -> str | None:
    """``last``: this run folder's last.ckpt (the way to resume an interrupted run in place).

    ``auto``: the same when it exists, else a fresh start; for jobs a cluster may requeue, which
    restart in their own folder.
    """
    if ckpt_path in (None, ""):
        return None
    last = out / "checkpoints" / "last.ckpt"
    if ckpt_path == "auto":
        return str(last) if last.exists() else None
    if ckpt_path == "last":
        if not last.exists():
            raise FileNotFoundError(
                f"ckpt_path=last but {last} does not exist; resume with hydra.run.dir=<the run folder> ckpt_path=last"
            )
        return str(last)
    if not Path(ckpt_path).is_file():
        raise FileNotFoundError(f"ckpt_path={ckpt_path} does not exist")
    return str(ckpt_path)


def continue_loggers(loggers: list[Logger], ckpt_path: str) -> None:
    """Make a resumed run's TensorBoard curves read as if it had never stopped.

    A resumed run redoes the epoch that was interrupted; TensorBoard hides what the interrupted
    run logged from the checkpoint's step on (``purge_step``) instead of drawing both.
    """
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    epoch_loop = ckpt.get("loops", {}).get("fit_loop", {}).get("epoch_loop.state_dict", {})
    # Lightning logs against the optimiser steps taken, which the epoch loop counts.
    step = int(epoch_loop.get("_batches_that_stepped", ckpt.get("global_step", 0)))
    for lg in loggers:
        if isinstance(lg, TensorBoardLogger):
            lg._kwargs.setdefault("purge_step", step)  # read when its SummaryWriter is created


def adopt_submitit_ranks() -> None:
    """Tell Lightning the ranks of the tasks that submitit's local executor started.

    Lightning reads SLURM's variables itself, but not submitit-local's; without ``LOCAL_RANK``
    each task would start more processes by re-running a command line that is not this job's.
    """
    if os.environ.get("SUBMITIT_EXECUTOR") != "local" or "LOCAL_RANK" in os.environ:
        return
    import submitit

    env = submitit.JobEnvironment()
    if env.num_tasks > 1:
        os.environ.update(
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(20000 + int(env.raw_job_id) % 20000),  # the job's pid: one port per job
            WORLD_SIZE=str(env.num_tasks),
            NODE_RANK="0",
            LOCAL_RANK=str(env.local_rank),
        )


def wait_for_store(store: Path, timeout: float = 24 * 3600) -> None:
    """Non-zero local ranks wait until rank 0 has finished building the store."""
    t0 = time.monotonic()
    while not (store / "manifest.json").exists():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{store} was not built within {timeout:.0f} s")
        time.sleep(2)


def summarise_sweep(sweep_dir: Path) -> Path | None:
    """Write summary.csv and summary.md at the sweep's root: each job's overrides and final metrics.

    Overrides that differ between jobs get a column each; those all jobs share head the Markdown.
    Jobs without metrics.json (running, or failed) are listed with empty metrics.
    """
    jobs = sorted(
        (p.parents[1] for p in sweep_dir.glob("*/.hydra/overrides.yaml")),
        key=lambda job: int(job.name) if job.name.isdigit() else 0,
    )
    if not jobs:
        return None
    overrides = [
        _parse_overrides(OmegaConf.load(job / ".hydra" / "overrides.yaml")) for job in jobs
    ]
    shared = {k: v for k, v in overrides[0].items() if all(o.get(k) == v for o in overrides)}
    swept = sorted({k for o in overrides for k in o} - set(shared))
    rows = []
    for job, job_overrides in zip(jobs, overrides, strict=True):
        metrics_file = job / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
        rows.append(
            {
                "job": job.name,
                **{k: job_overrides.get(k, "") for k in swept},
                **{k: v for k, v in metrics.items() if "/" in k},
            }
        )
    keys = ["job", *swept]
    keys += sorted({k for r in rows for k in r} - set(keys))
    # Parallel jobs may write at once: each writes a file of its own, then renames it into place.
    _write_atomic(sweep_dir / "summary.csv", _csv_text(keys, rows))
    shown = ["job", *swept] + [k for k in keys if k.startswith("test/") or k == "val/map3_best"]
    lines = [f"Every job: `{' '.join(f'{k}={v}' for k, v in shared.items())}`", ""]
    lines += ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    lines += ["| " + " | ".join(_cell(r.get(k, "")) for k in shown) + " |" for r in rows]
    _write_atomic(sweep_dir / "summary.md", "\n".join(lines) + "\n")
    log.info("sweep summary: %s", sweep_dir / "summary.md")
    return sweep_dir / "summary.md"


def _parse_overrides(overrides: list[str]) -> dict[str, str]:
    """``key=value`` command-line overrides as a dict (``+``/``++`` prefixes dropped)."""
    pairs = (o.split("=", 1) if "=" in o else (o, "") for o in overrides)
    return {k.lstrip("+"): v for k, v in pairs}


def _cell(value: Any) -> str:
    """Metrics to 4 decimals, swept numbers (Optuna's floats) to 4 significant digits."""
    if isinstance(value, float):
        return f"{value:.4f}"
    try:
        return f"{float(value):.4g}" if "." in str(value) else str(value)
    except ValueError:
        return str(value)


def _csv_text(keys: list[str], rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, keys)
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)


class SweepSummary(Callback):
    """Hydra callback (``hydra.callbacks``): the sweep summary after each job, and once all have ended.

    Each job refreshes it so that a long sweep can be followed; the final pass runs in the
    process that launched the sweep, after every job (wherever it ran) has finished.
    """

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if config.hydra.mode == RunMode.MULTIRUN:
            summarise_sweep(Path(config.hydra.sweep.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        summarise_sweep(Path(config.hydra.sweep.dir))
