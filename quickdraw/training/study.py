"""An Optuna study as a hyperparameter search uses it: storage, pruner, search space, results.

What the sweeper ([`quickdraw.training.sweeper`][quickdraw.training.sweeper]) and the pruning
callback ([`quickdraw.training.callbacks.pruning`][quickdraw.training.callbacks.pruning]) share,
so that a job started anywhere (this process, a joblib worker, a SLURM job) finds the study its
sweeper asked the trial from. Optuna's own objects do the work (storages, pruners, samplers,
distributions: https://optuna.readthedocs.io/en/stable/reference/); this module turns the
`hydra.sweeper.*` settings into them and says what is wrong with a setting that cannot work.

Storage (`hydra.sweeper.storage`):

- a database URL (`postgresql://user:pw@host/db`, `sqlite:///path.db`):
  Optuna's `RDBStorage` with a heartbeat, so a trial whose worker was killed is marked FAIL
  after `HEARTBEAT_GRACE_S` and stops counting towards `n_trials`;
- a path ending in `.journal` (or `.log`): Optuna's `JournalStorage` on a `JournalFileBackend`,
  an append-only file with a lock, for a filesystem several machines share without a server;
- null: a journal in the sweep folder (`optuna.journal`): a study of this sweep alone, which
  its jobs reach in any process.
"""

from __future__ import annotations

import logging
import os
import socket
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from quickdraw.core.errors import SettingError

log = logging.getLogger(__name__)

PRUNERS = ("median", "hyperband", "none")
JOURNAL_SUFFIXES = (".journal", ".log")
SWEEP_JOURNAL = "optuna.journal"  # the study of a sweep given no storage, in its folder
# Trials report their heartbeat this often (seconds); one silent for the grace period is failed.
HEARTBEAT_S, HEARTBEAT_GRACE_S = 30, 120


def storage_url(storage: str | None, sweep_dir: str | Path) -> str:
    """The storage a study lives in: `storage` as given, or the sweep folder's journal file."""
    return str(storage) if storage else str(Path(sweep_dir) / SWEEP_JOURNAL)


def is_journal(url: str) -> bool:
    """Whether `url` names a journal file (a path), not a database (a URL with `://`)."""
    return "://" not in url


def open_storage(url: str, heartbeat: bool = True) -> Any:
    """Optuna's storage for `url` (see the module docstring); a database gets a heartbeat
    (`RDBStorage(heartbeat_interval=HEARTBEAT_S, grace_period=HEARTBEAT_GRACE_S)`)."""
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if is_journal(url):
        path = Path(os.path.expanduser(url))
        if path.suffix not in JOURNAL_SUFFIXES:
            raise SettingError(
                f"hydra.sweeper.storage={url} is neither a database URL (postgresql://..., "
                f"sqlite:///...) nor a journal file (a path ending in {' or '.join(JOURNAL_SUFFIXES)})"
            )
        if path.is_dir():
            raise SettingError(
                f"hydra.sweeper.storage={url} is a folder: give a journal file, "
                f"e.g. hydra.sweeper.storage={path / 'study.journal'}"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    from sqlalchemy.exc import NoSuchModuleError

    if url.startswith("sqlite:///"):  # SQLAlchemy does not create the folder of the file
        Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
    extra = (
        dict(heartbeat_interval=HEARTBEAT_S, grace_period=HEARTBEAT_GRACE_S) if heartbeat else {}
    )
    try:
        return _rdb_storage(url, extra)
    except NoSuchModuleError as error:  # a scheme SQLAlchemy does not know: postgressql://
        raise SettingError(
            f"hydra.sweeper.storage={_without_password(url)}: SQLAlchemy knows no database (or "
            f"driver) {url.split('://', 1)[0]!r}; check the URL's scheme (postgresql://..., "
            "sqlite:///...)"
        ) from error
    except ImportError as error:  # the database's driver (psycopg for PostgreSQL) is missing
        raise SettingError(
            f"hydra.sweeper.storage={_without_password(url)} needs a database driver: {error}. "
            "Install it (PostgreSQL: psycopg, in 'quickdraw[scale]')"
        ) from error
    except Exception as error:  # sqlalchemy.exc.OperationalError: no server, bad login
        raise SettingError(
            f"hydra.sweeper.storage={_without_password(url)}: cannot open the study's database "
            f"({str(error).splitlines()[0]}). Check that the server runs and the URL's user, "
            "password and database are right"
        ) from error


def _rdb_storage(url: str, extra: dict[str, Any], attempts: int = 5) -> Any:
    """`RDBStorage(url)`, retried when another worker is creating Optuna's tables at the same
    moment: the first use of an empty database creates them, and two workers started together
    both try (PostgreSQL refuses the second's `CREATE TYPE` as a duplicate)."""
    import time

    import optuna
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(attempts - 1):
        try:
            return optuna.storages.RDBStorage(url, **extra)
        except (IntegrityError, ProgrammingError) as error:
            if not _duplicate(error):
                raise
            log.info("another worker is creating the study's tables; trying again")
            time.sleep(1 + attempt)
    return optuna.storages.RDBStorage(url, **extra)


def _duplicate(error: Exception) -> bool:
    text = str(error).lower()
    return "duplicate" in text or "already exists" in text


def _without_password(url: str) -> str:
    """A database URL as it may be shown: `postgresql://user:***@host/db`."""
    head, at, tail = url.rpartition("@")
    if not at or ":" not in head.split("://", 1)[-1]:
        return url
    scheme, _, login = head.partition("://")
    return f"{scheme}://{login.split(':', 1)[0]}:***@{tail}"


def build_pruner(name: Any, warmup: int) -> Any:
    """Optuna's pruner for `hydra.sweeper.pruner`: `median` (MedianPruner), `hyperband`
    (HyperbandPruner), `none` (NopPruner), or a config with a `_target_`.

    `warmup`: validations (epochs) a trial runs before it may be pruned: MedianPruner's
    `n_warmup_steps`, HyperbandPruner's `min_resource`. A median needs finished trials to
    compare with: MedianPruner waits for `n_startup_trials=2`.
    """
    import optuna

    if isinstance(name, optuna.pruners.BasePruner):  # built already (a job's callback config)
        return name
    if isinstance(name, Mapping):
        import hydra

        return hydra.utils.instantiate(name)
    if warmup < 0:
        raise SettingError(f"hydra.sweeper.pruner_warmup={warmup}: give 0 or more validations")
    if name in (None, "none"):
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=warmup)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, warmup))
    raise SettingError(
        f"hydra.sweeper.pruner={name}: choose one of {', '.join(PRUNERS)} "
        "(or a config with a _target_, e.g. optuna.pruners.PercentilePruner)"
    )


def build_sampler(config: DictConfig | None, shared: bool) -> Any:
    """The sampler of `hydra.sweeper.sampler` (a config with a `_target_`, TPE when null).

    A seeded sampler draws the same parameters in every process that builds it: two workers of
    one study would evaluate the same trials. In a shared storage (`shared`), the seed is mixed
    with this worker's host and process id, so workers draw apart; one worker alone on a
    sweep's own study keeps the seed, and its trials repeat.
    """
    import hydra
    import optuna

    if config is None:
        return optuna.samplers.TPESampler()
    kwargs: dict[str, Any] = {}
    seed = config.get("seed")
    if shared and seed is not None:
        kwargs["seed"] = zlib.crc32(f"{seed}:{socket.gethostname()}:{os.getpid()}".encode())
        log.info("shared study: sampler seed %s mixed with this worker's host and pid", seed)
    return hydra.utils.instantiate(config, **kwargs)


def search_space(params: Mapping[str, str], arguments: list[str]) -> tuple[dict, list[str]]:
    """Optuna distributions from Hydra's sweep syntax, and the plain overrides to pass every trial.

    `params` (`hydra.sweeper.params`) are `key: expression`; `arguments` (the command line) add
    or replace entries. Hydra parses the expressions (https://hydra.cc/docs/advanced/override_grammar/extended/):
    `choice(a, b)` is a categorical distribution, `range(lo, hi[, step])` integers (or floats
    with a float step), `interval(lo, hi)` a float range (integers when both ends are),
    `tag(log, interval(...))` the same on a log scale; a plain value is fixed for every trial.
    Returns `({key: distribution}, [fixed overrides])`, keys as written (`++` kept).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    lines = [f"{k}={v}" for k, v in params.items()] + list(arguments)
    space: dict[str, Any] = {}
    fixed: dict[str, str] = {}
    for override in parser.parse_overrides(lines):
        key = override.get_key_element()
        space.pop(key, None)
        fixed.pop(key, None)
        if override.is_sweep_override():
            space[key] = _distribution(key, override.value())
        else:
            fixed[key] = override.input_line
    return space, list(fixed.values())


def _distribution(key: str, sweep: Any) -> Any:
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    log_scale = "log" in getattr(sweep, "tags", set())
    if isinstance(sweep, ChoiceSweep):
        return CategoricalDistribution(list(sweep.list))
    if isinstance(sweep, RangeSweep):
        lo, hi, step = sweep.start, sweep.stop, sweep.step
        if all(isinstance(v, int) for v in (lo, hi, step)):
            return IntDistribution(int(lo), int(hi) - 1, step=int(step))  # range() excludes stop
        return FloatDistribution(lo, hi, step=step)
    if isinstance(sweep, IntervalSweep):
        lo, hi = sweep.start, sweep.end
        if isinstance(lo, int) and isinstance(hi, int):
            return IntDistribution(lo, hi, log=log_scale)
        return FloatDistribution(float(lo), float(hi), log=log_scale)
    raise SettingError(
        f"hydra.sweeper.params: {key} is a sweep Optuna cannot search ({type(sweep).__name__}); "
        "use choice(...), range(...), interval(...) or tag(log, interval(...))"
    )


def trial_overrides(params: Mapping[str, Any]) -> list[str]:
    """A trial's parameters as command-line overrides (`key=value`, keys as in the space)."""
    return [f"{key}={_override_value(value)}" for key, value in params.items()]


def _override_value(value: Any) -> str:
    if isinstance(value, str) and any(c in value for c in " ,()[]{}='\""):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return str(value)


def write_results(study: Any, sweep_dir: Path) -> Path | None:
    """`optimization_results.yaml` in the sweep folder: the best parameters and value so far
    (`name`, `best_params`, `best_value`), as hydra-optuna-sweeper wrote it; None before any
    trial completed."""
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    path = Path(sweep_dir) / "optimization_results.yaml"
    best = study.best_trial
    results = {"name": "optuna", "best_params": best.params, "best_value": best.value}
    OmegaConf.save(OmegaConf.create({**results, "best_trial": best.number}), path)
    return path


HISTORY_FIGURE, IMPORTANCE_FIGURE = "optimization_history.png", "param_importances.png"


def write_figures(study: Any, sweep_dir: Path) -> list[Path]:
    """Optuna's optimisation history and parameter importances (fANOVA) as PNGs in the sweep
    folder, drawn by `optuna.visualization.matplotlib`
    (https://optuna.readthedocs.io/en/stable/reference/visualization/matplotlib/). Importances
    need two completed trials and a parameter that varied; a figure that cannot be drawn yet is
    skipped with a log line, and the search goes on."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as figures

    written = []
    for name, plot in ((HISTORY_FIGURE, figures.plot_optimization_history),
                       (IMPORTANCE_FIGURE, figures.plot_param_importances)):  # fmt: skip
        path = Path(sweep_dir) / name
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna's ExperimentalWarning on every call
                axes = plot(study)
            figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
            figure.set_size_inches(8, 4.5)
            figure.tight_layout()
            figure.savefig(path, dpi=100)
            plt.close(figure)
            written.append(path)
        except (ValueError, RuntimeError, ZeroDivisionError) as error:
            log.info(
                "%s not drawn yet: %s", name, str(error).splitlines()[0] if str(error) else error
            )
    return written
