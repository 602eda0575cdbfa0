"""OptunaPruning: a trial of an Optuna search reports `val/map3` after each validation, and stops
when the study's pruner says it lags.

The trial is the one the sweeper asked ([`quickdraw.training.sweeper`][quickdraw.training.sweeper]),
found in the study's storage from any process (`hydra.sweeper.storage`, or the sweep folder's
journal), so a job on a joblib worker or a SLURM node reports as one in the sweeper's process.
Following Optuna's integration callbacks (`optuna_integration.PyTorchLightningPruningCallback`),
each validation is `trial.report(value, step=epoch)` then `trial.should_prune()`
(https://optuna.readthedocs.io/en/stable/reference/generated/optuna.trial.Trial.html). A pruned
run does not raise inside Lightning: it stops at the end of the epoch, its checkpoints intact,
and `train()` writes its metrics.json with `"status": "pruned"` before telling the sweeper.
Outside a search (no trial number) the callback does nothing.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import lightning as L

log = logging.getLogger(__name__)


class OptunaPruning(L.Callback):
    """Reports `monitor` (units of the metric: MAP@3 in [0, 1]) at each epoch's validation.

    `trial`: the trial's number in the study (the sweeper passes it to the job); None outside
    a search. `study_name` and `storage`: the study's, from `hydra.sweeper` (null storage: the
    journal in the sweep folder, the parent of the job's folder `run_dir`). `pruner` and
    `pruner_warmup`: the sweeper's (`hydra.sweeper.pruner`, `.pruner_warmup`), which decide.
    `pruned`: after fitting, why the trial was stopped,
    or None.
    """

    def __init__(
        self,
        trial: int | None = None,
        study_name: str | None = None,
        storage: str | None = None,
        run_dir: str | None = None,
        monitor: str = "val/map3",
        pruner: Any = "median",
        pruner_warmup: int = 3,
    ) -> None:
        self.number = trial
        self.study_name, self.storage, self.run_dir = study_name, storage, run_dir
        self.monitor = monitor
        self.pruner, self.pruner_warmup = pruner, pruner_warmup
        self.trial: Any = None
        self.pruned: str | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.number is None or stage != "fit" or not trainer.is_global_zero:
            return
        import optuna

        from quickdraw.training.study import build_pruner, open_storage, storage_url

        # Job folders are <sweep>/<trial number>.
        sweep_dir = Path(self.run_dir or trainer.default_root_dir).parent
        storage = open_storage(storage_url(self.storage, sweep_dir), heartbeat=False)
        # A study keeps no pruner in its storage: the job builds the sweeper's from the same settings.
        pruner = build_pruner(self.pruner, int(self.pruner_warmup))
        study = optuna.load_study(study_name=self.study_name, storage=storage, pruner=pruner)
        study_id = storage.get_study_id_from_name(self.study_name)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, int(self.number))
        self.trial = optuna.trial.Trial(study, trial_id)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.number is None or trainer.sanity_checking:
            return
        stop = False
        if trainer.is_global_zero and self.trial is not None:
            stop = self._report(trainer)
        # Every rank stops together: the first one decided for all.
        if trainer.strategy.broadcast(stop, src=0):
            trainer.should_stop = True

    def _report(self, trainer: L.Trainer) -> bool:
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            from quickdraw.core.errors import SettingError

            raise SettingError(
                f"callbacks.optuna_pruning.monitor={self.monitor} is not logged at validation "
                f"(logged: {', '.join(sorted(trainer.callback_metrics))})"
            )
        value, epoch = float(value), trainer.current_epoch
        if not math.isfinite(value):
            return False  # Optuna refuses NaN; the NaN guard and the sweeper deal with it
        self.trial.report(value, step=epoch)
        if not self.trial.should_prune():
            return False
        self.pruned = (
            f"pruned after epoch {epoch}: {self.monitor}={value:.4f} lags the study's earlier "
            f"trials at this epoch ({type(self.trial.study.pruner).__name__})"
        )
        log.warning("trial %s %s", self.number, self.pruned)
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"pruned": self.pruned}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.pruned = state_dict.get("pruned")
