"""The Optuna search behind `hparams_search=optuna`: Hydra's Sweeper API over Optuna's ask/tell.

Glue between two engines, with no optimiser of its own: Optuna's sampler proposes each trial
(`study.ask`, https://optuna.readthedocs.io/en/stable/tutorial/20_recipes/009_ask_and_tell.html),
Hydra's launcher runs it as a job of the multirun (https://hydra.cc/docs/advanced/plugins/develop/),
and the job's result goes back to the study (`study.tell`). Hydra finds the sweeper as the plugin
`hydra_plugins.quickdraw_optuna.OptunaSweeper`, a thin class over [`OptunaSearch`][quickdraw.training.sweeper.OptunaSearch].

A study is shared: every worker started with the same `hydra.sweeper.storage` and `study_name`
joins it, asks trials Optuna numbers uniquely, and stops once the study holds `n_trials`. Each
trial's job folder is named by its trial number and holds `trial.json` (state and reason); the
sweep folder holds `optimization_results.yaml`, `summary.md` and the study's figures.
"""

from __future__ import annotations

import logging
import math
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from quickdraw.core.errors import QuickDrawError, SettingError
from quickdraw.core.runs import TRIAL_KEY, RunDir, summarise_sweep
from quickdraw.training import study as studies

log = logging.getLogger(__name__)


class SearchFailed(QuickDrawError, RuntimeError):
    """More trials failed than `hydra.sweeper.max_failure_rate` allows: the search stops."""


class OptunaSearch:
    """One worker of an Optuna study, launching its trials through Hydra's launcher.

    Settings are `hydra.sweeper.*` (`quickdraw/conf/hydra/sweeper/optuna.yaml` documents each):
    `direction` (`maximize`/`minimize` the value the task returns, `optimized_metric`),
    `study_name`, `storage`, `n_trials` (trials the study ends with, all workers together),
    `n_jobs` (trials launched at once), `max_failure_rate` (the share of `n_trials` that may
    fail in this worker before it stops:
    [`too_many_failures`][quickdraw.training.sweeper.too_many_failures]), `sampler`, `pruner`
    and `pruner_warmup`, `params` (the space).
    """

    KEYS = frozenset({"direction", "study_name", "storage", "n_trials", "n_jobs", "max_failure_rate",
                      "sampler", "pruner", "pruner_warmup", "params"})  # fmt: skip

    def __init__(self, **settings: Any) -> None:
        unknown = sorted(set(settings) - self.KEYS)
        if unknown:
            raise SettingError(
                f"hydra.sweeper.{unknown[0]} is not a setting of the Optuna sweeper; its settings: "
                f"{', '.join(sorted(self.KEYS))} (quickdraw/conf/hydra/sweeper/optuna.yaml)"
            )
        self.settings = settings
        self.config: DictConfig | None = None
        self.launcher: Any = None
        self.job_index = 0

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    # -- the study -------------------------------------------------------------------------------
    @property
    def sweep_dir(self) -> Path:
        return Path(str(self.config.hydra.sweep.dir))

    def open_study(self) -> Any:
        """The study `study_name` in its storage: created, or joined when it exists."""
        import optuna

        s = self.settings
        direction = s.get("direction", "maximize")
        if direction not in ("maximize", "minimize"):
            raise SettingError(f"hydra.sweeper.direction={direction}: choose maximize or minimize")
        if not s.get("study_name"):
            raise SettingError(
                "hydra.sweeper.study_name is empty: name the study, e.g. quickdraw-resnet18"
            )
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        url = studies.storage_url(s.get("storage"), self.sweep_dir)
        storage = studies.open_storage(url)
        study = optuna.create_study(
            study_name=s["study_name"],
            storage=storage,
            sampler=studies.build_sampler(s.get("sampler"), shared=bool(s.get("storage"))),
            pruner=studies.build_pruner(s.get("pruner", "median"), int(s.get("pruner_warmup", 3))),
            direction=direction,
            load_if_exists=True,
        )
        if study.direction.name.lower() != direction:
            raise SettingError(
                f"study {s['study_name']} in {url} was created to {study.direction.name.lower()}, "
                f"not hydra.sweeper.direction={direction}: choose another hydra.sweeper.study_name"
            )
        with warnings.catch_warnings():  # Optuna calls it experimental since 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # trials of killed workers (database storage)
        log.info("study %s in %s: %d trials so far", study.study_name, url, len(study.trials))
        return study

    # -- the search ------------------------------------------------------------------------------
    def sweep(self, arguments: list[str]) -> None:
        s = self.settings
        n_trials, n_jobs = int(s.get("n_trials", 20)), max(1, int(s.get("n_jobs", 1)))
        max_failure_rate = float(s.get("max_failure_rate", 0.0))
        space, fixed = studies.search_space(s.get("params") or {}, arguments)
        study = self.open_study()
        # The sweep's configuration, as Hydra's own sweeper writes it
        OmegaConf.save(self.config, self.sweep_dir / "multirun.yaml")
        launched = failed = 0
        while True:
            trials = self._ask(study, space, n_trials, n_jobs)
            if not trials:
                break
            overrides = [
                [*fixed, *studies.trial_overrides(t.params), f"++{TRIAL_KEY}={t.number}",
                 f"hydra.sweep.subdir={t.number}"]
                for t in trials
            ]  # fmt: skip
            try:
                with _Heartbeats(study, trials):
                    returns = self.launcher.launch(overrides, initial_job_idx=self.job_index)
            except BaseException as error:  # the launcher itself failed (or Ctrl-C): no trial
                self._abandon(study, trials, error)  # of this batch may stay RUNNING for ever
                raise
            self.job_index += len(returns)
            for trial, ret in zip(trials, returns, strict=True):
                failed += self._tell(study, trial, ret) == "FAIL"
            launched += len(trials)
            self._report(study)
            if too_many_failures(failed, n_trials, max_failure_rate):
                raise SearchFailed(
                    f"{failed} of the {launched} trials this worker ran failed, more than "
                    f"hydra.sweeper.max_failure_rate={max_failure_rate} of "
                    f"n_trials={n_trials} allows (reasons in each "
                    f"trial's trial.json and in {self.sweep_dir / 'summary.md'}): fix the setting "
                    "that fails, narrow the search space, or raise hydra.sweeper.max_failure_rate"
                )
        self._report(study)
        studies.write_figures(study, self.sweep_dir)
        if launched == 0:
            self._nothing_to_run(study, n_trials)

    def _nothing_to_run(self, study: Any, n_trials: int) -> None:
        """Say why this worker ran no trial: the study is done, or trials of other workers (or
        of a killed one, which a database fails once its heartbeat is stale) still run."""
        running = [t.number for t in study.get_trials(deepcopy=False) if t.state.name == "RUNNING"]
        if not running:
            log.info("study %s already holds %d trials: nothing to run", study.study_name, n_trials)
            return
        log.warning(
            "study %s holds n_trials=%d trials, of which %s still RUNNING: nothing to run here. A "
            "trial of a killed worker counts until a database storage marks it FAIL, %d s after its "
            "last heartbeat (a journal file never does); run the same command again then, or raise "
            "hydra.sweeper.n_trials", study.study_name, n_trials,
            ", ".join(map(str, running)), studies.HEARTBEAT_GRACE_S,
        )  # fmt: skip

    def _ask(self, study: Any, space: dict, n_trials: int, n_jobs: int) -> list[Any]:
        """Up to `n_jobs` new trials, while the study counts fewer than `n_trials` (`counts`).

        Two workers may ask in the same instant when one trial is left: Optuna numbers trials
        in the order they were asked, so the one with `n_trials` counted trials before it is
        surplus, and is told FAIL unrun (and does not count).
        """
        from optuna.trial import TrialState

        asked = []
        for _ in range(n_jobs):
            if sum(map(counts, study.get_trials(deepcopy=False))) >= n_trials:
                break
            with warnings.catch_warnings():  # the heartbeats are this sweeper's (_Heartbeats)
                warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)
                trial = study.ask(space)
            before = study.get_trials(deepcopy=False)
            if sum(counts(t) for t in before if t.number < trial.number) >= n_trials:
                trial.set_user_attr("reason", f"surplus: the study had n_trials={n_trials} already")
                study.tell(trial, state=TrialState.FAIL)
                break
            asked.append(trial)
        return asked

    def _tell(self, study: Any, trial: Any, ret: Any) -> str:
        """Tell the study how the trial's job ended; returns the state's name."""
        import optuna
        from optuna.trial import TrialState

        reason = ""
        try:
            value = _job_result(ret)
            if value is None or not math.isfinite(float(value)):
                state, reason = TrialState.FAIL, f"the job returned {value!r}, not a number"
            else:
                state = TrialState.COMPLETE
        except optuna.TrialPruned as pruned:
            state, value, reason = TrialState.PRUNED, None, str(pruned)
        except Exception as error:  # the job's error: settings that cannot run, out of memory...
            state, value, reason = TrialState.FAIL, None, f"{type(error).__name__}: {error}"
        if reason:
            trial.set_user_attr("reason", reason[:2000])
        trial.set_user_attr(RAN, True)
        study.tell(trial, float(value) if state == TrialState.COMPLETE else None, state=state)
        RunDir(self.sweep_dir / str(trial.number)).write_trial(
            study=study.study_name, number=trial.number, state=state.name,
            value=float(value) if state == TrialState.COMPLETE else None, reason=reason,
            params=trial.params,
        )  # fmt: skip
        log.info(
            "trial %d %s%s", trial.number, state.name, f": {reason}" if reason else f" {value}"
        )
        return state.name

    def _abandon(self, study: Any, trials: Sequence[Any], error: BaseException) -> None:
        """Tell the study the batch's trials FAILed when their jobs could not be launched or
        were interrupted (Ctrl-C: Lightning ends the job with SystemExit), and say so in the
        folders of those whose jobs started."""
        from optuna.trial import TrialState

        if isinstance(error, KeyboardInterrupt | SystemExit):
            reason = "interrupted before its job ended (Ctrl-C or a signal): it does not count"
        else:
            reason = f"not launched: {type(error).__name__}: {error}"[:2000]
        for trial in trials:
            try:
                trial.set_user_attr("reason", reason)
                study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            except Exception as lost:  # the storage went away too: the heartbeat will tell
                log.warning("trial %d left RUNNING in the study: %s", trial.number, lost)
            job = RunDir(self.sweep_dir / str(trial.number))
            if job.path.is_dir():  # its job started: trial.json says why it has no result
                job.write_trial(
                    study=study.study_name, number=trial.number, state=TrialState.FAIL.name,
                    value=None, reason=reason, params=trial.params,
                )  # fmt: skip
        try:
            summarise_sweep(self.sweep_dir)
        except Exception as unwritten:  # the error being raised is the one to show
            log.warning("sweep summary not refreshed: %s", unwritten)

    def _report(self, study: Any) -> None:
        studies.write_results(study, self.sweep_dir)
        summarise_sweep(self.sweep_dir)


RAN = "ran"  # user attribute of a trial whose job ran, whatever its end


def too_many_failures(failed: int, n_trials: int, max_failure_rate: float) -> bool:
    """Whether a worker whose trials failed `failed` times stops: more than `max_failure_rate`
    of the study's `n_trials` (0.1 of 40: the 5th failure). A share of the trials run so far
    would stop a search at its first trial's failure for any rate below 1."""
    return failed > max_failure_rate * n_trials


def _job_result(ret: Any) -> Any:
    """The job's return value, or its exception raised, as Hydra's `JobReturn.return_value`,
    without the "Error executing job with overrides" line that property prints for every job
    that raised: a pruned trial ends cleanly, and `_tell` logs why a trial did not complete."""
    from hydra.core.utils import JobStatus

    if getattr(ret, "status", None) == JobStatus.FAILED and isinstance(
        getattr(ret, "_return_value", None), BaseException
    ):
        raise ret._return_value
    return ret.return_value


def counts(trial: Any) -> bool:
    """Whether a trial counts towards `n_trials`: it is running, waiting, or its job ran to an
    end (COMPLETE, PRUNED, or FAIL with the job's error). A trial failed without running (not
    launched, surplus, or its worker killed: no heartbeat) is asked again by a later worker."""
    return trial.state.name != "FAIL" or bool(trial.user_attrs.get(RAN))


class _Heartbeats:
    """Records the running trials' heartbeats while their jobs run, where the storage keeps them
    (Optuna's `RDBStorage(heartbeat_interval=...)`), so that a trial whose worker dies is
    failed by the next worker (`optuna.storages.fail_stale_trials`) instead of counting forever."""

    def __init__(self, study: Any, trials: Sequence[Any]) -> None:
        storage = study._storage  # Optuna's Study keeps no public handle on its storage
        self.beat: Callable[[int], None] | None = getattr(storage, "record_heartbeat", None)
        self.enabled = self.beat is not None and storage.get_heartbeat_interval() is not None
        self.interval = storage.get_heartbeat_interval() if self.enabled else None
        self.ids = [t._trial_id for t in trials]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            for trial_id in self.ids:
                try:
                    self.beat(trial_id)
                except Exception as error:  # a lost connection must not end the search
                    log.debug("heartbeat of trial %s not recorded: %s", trial_id, error)
            self.stop.wait(self.interval)

    def __enter__(self) -> _Heartbeats:
        if self.enabled:
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.enabled:
            self.thread.join()
