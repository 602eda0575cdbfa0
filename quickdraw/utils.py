"""Small helpers the entry points share: instantiating config groups, run folders, resume paths, sweep summaries."""

from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path
from typing import Any

import hydra
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
    """``last`` means this run folder's last.ckpt (the way to resume an interrupted run in place)."""
    if ckpt_path in (None, ""):
        return None
    if ckpt_path == "last":
        last = out / "checkpoints" / "last.ckpt"
        if not last.exists():
            raise FileNotFoundError(
                f"ckpt_path=last but {last} does not exist; resume with hydra.run.dir=<the run folder> ckpt_path=last"
            )
        return str(last)
    if not Path(ckpt_path).is_file():
        raise FileNotFoundError(f"ckpt_path={ckpt_path} does not exist")
    return str(ckpt_path)


def wait_for_store(store: Path, timeout: float = 24 * 3600) -> None:
    """Non-zero local ranks wait until rank 0 has finished building the store."""
    t0 = time.monotonic()
    while not (store / "manifest.json").exists():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{store} was not built within {timeout:.0f} s")
        time.sleep(2)


def summarise_sweep(sweep_dir: Path) -> Path | None:
    """Write summary.csv and summary.md at the sweep's root: each job's overrides and final metrics."""
    rows = []
    for metrics_file in sorted(
        sweep_dir.glob("*/metrics.json"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    ):
        job = metrics_file.parent
        overrides_file = job / ".hydra" / "overrides.yaml"
        overrides = OmegaConf.load(overrides_file) if overrides_file.exists() else []
        metrics = json.loads(metrics_file.read_text())
        rows.append(
            {
                "job": job.name,
                "overrides": " ".join(overrides),
                **{k: v for k, v in metrics.items() if "/" in k},
            }
        )
    if not rows:
        return None
    keys = ["job", "overrides"] + sorted({k for r in rows for k in r} - {"job", "overrides"})
    with open(sweep_dir / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, keys)
        w.writeheader()
        w.writerows(rows)
    shown = [
        k
        for k in keys
        if k in ("job", "overrides") or k.startswith("test/") or k == "val/map3_best"
    ]
    fmt = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    lines += ["| " + " | ".join(fmt(r.get(k, "")) for k in shown) + " |" for r in rows]
    (sweep_dir / "summary.md").write_text("\n".join(lines) + "\n")
    log.info("sweep summary: %s", sweep_dir / "summary.md")
    return sweep_dir / "summary.md"
