"""What pruning saves in an Optuna search: trials, CPU time and the best value, with and without.

    python -m benchmarks.sweeps                 # the smoke search, then a small real-sample search
    python -m benchmarks.sweeps --only smoke    # the smoke search alone

Each search is the train command itself (`python -m quickdraw.train -m hparams_search=...`), run
once with `hydra.sweeper.pruner=none` and once with the search's pruner (median), each in a sweep
folder of its own with its own study (the sweep's journal). CPU time is the user + system time of
the command and everything it started (`resource.getrusage(RUSAGE_CHILDREN)`), so it counts every
trial whatever the number of threads. The real-sample search needs
`../shared/data/quickdraw-sample/train_simplified.zip` (skipped, saying so, when absent); its
store is converted once into `data/` and reused.
"""

from __future__ import annotations

import argparse
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import ROOT, SAMPLE_DIR

SMOKE = "hparams_search=optuna_smoke experiment=smoke"
# The real sample: 344 classes of ~16 training drawings; 32 px, 3 training batches of the
# epoch's 688 drawings (2 a class) and 2 validation batches an epoch, 3 epochs a trial, 6 trials
# (the first 2 random: the median pruner needs them finished). A tiny budget: what fits a busy
# 2-core machine in minutes.
REAL = (
    "hparams_search=optuna experiment=resnet18 data.source={sample} data.per_class=2 "
    "data.raster.size=32 data.num_workers=0 trainer.max_epochs=3 ++trainer.limit_train_batches=3 "
    "++trainer.limit_val_batches=2 test=false callbacks.early_guess=null "
    "hydra.sweeper.n_trials=6 hydra.sweeper.storage=null hydra.sweeper.sampler.seed=0 "
    "hydra.sweeper.sampler.n_startup_trials=2 hydra.sweeper.pruner_warmup=1"
)


def search(overrides: str, sweep: Path) -> dict:
    """Run one search; its trials' states, CPU and wall seconds, and best value."""
    import optuna
    from omegaconf import OmegaConf

    from quickdraw.training.study import open_storage

    command = [sys.executable, "-m", "quickdraw.train", "-m", *shlex.split(overrides),
               f"hydra.sweep.dir={sweep}", "callbacks.progress_bar.refresh_rate=0"]  # fmt: skip
    before, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall, after = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(
            f"{shlex.join(command)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    name = OmegaConf.load(sweep / "multirun.yaml").hydra.sweeper.study_name
    study = optuna.load_study(study_name=name, storage=open_storage(str(sweep / "optuna.journal")))
    states = [t.state.name for t in study.trials]
    epochs = sum(len(t.intermediate_values) for t in study.trials)
    return {
        "trials": len(states), "pruned": states.count("PRUNED"), "failed": states.count("FAIL"),
        "epochs": epochs, "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        "wall_s": wall, "best": study.best_value,
    }  # fmt: skip


def compare(label: str, overrides: str, root: Path) -> None:
    print(f"\n## {label}\n")
    print("| pruner | trials | pruned | epochs trained | CPU s | wall s | best val/map3_best |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for pruner in ("none", "median"):
        extra = f" hydra.sweeper.pruner={pruner}"
        r = search(overrides + extra, root / f"{label.split()[0]}-{pruner}")
        print(f"| {pruner} | {r['trials']} | {r['pruned']} | {r['epochs']} | {r['cpu_s']:.0f} | "
              f"{r['wall_s']:.0f} | {r['best']:.4f} |", flush=True)  # fmt: skip
    print(f"\ncommand: python -m quickdraw.train -m {overrides} hydra.sweeper.pruner=none|median")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("smoke", "real"), help="run one search only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="quickdraw-sweeps-") as tmp:
        if args.only != "real":
            compare("smoke search", SMOKE, Path(tmp))
        if args.only != "smoke":
            sample = SAMPLE_DIR / "train_simplified.zip"
            if not sample.is_file():
                print(f"\nreal-sample search skipped: {sample} not found")
                return
            compare("real-sample search", REAL.format(sample=sample), Path(tmp))


if __name__ == "__main__":
    main()
