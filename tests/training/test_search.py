"""The Optuna search (`hparams_search=optuna*`): the documented commands as written, search spaces
that fit their experiments, pruning, failed trials, and one study shared by two workers in
PostgreSQL and in a journal file.

Every search runs the real entry point and the real sweeper; trials are one or two tiny epochs.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from quickdraw.data.doodles import CLASSES as GENERATED_CLASSES
from tests.helpers.commands import finish
from tests.helpers.commands import start_train as start
from tests.helpers.configs import compose_config
from tests.helpers.paths import ROOT
from tests.helpers.postgres import Unavailable, postgres_server

optuna = pytest.importorskip("optuna")

SEARCHES = sorted((ROOT / "quickdraw/conf/hparams_search").glob("*.yaml"))
DOCUMENTED = re.compile(r"python -m quickdraw\.train -m hparams_search=optuna_smoke[^\n`]*")


def load(storage: str, name: str):
    from quickdraw.training.study import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(storage, heartbeat=False))


def trials_of(sweep: Path) -> dict[int, dict]:
    return {int(p.parent.name): json.loads(p.read_text()) for p in sweep.glob("*/trial.json")}


@pytest.fixture(scope="module")
def tiny(tiny_overrides) -> list[str]:
    """One training batch an epoch on the tiny store, no test split: a trial in seconds."""
    return [*tiny_overrides, "test=false", "trainer.limit_train_batches=1"]


@pytest.mark.slow
def test_documented_smoke_search_runs_as_written(tmp_path):
    """The docs' command, word for word (plus where to write): trials, summary, figures, results."""
    texts = [(ROOT / "README.md").read_text(), (ROOT / "docs/guides/scaling.md").read_text()]
    commands = {m.group(0).strip() for text in texts for m in DOCUMENTED.finditer(text)}
    assert commands, "the docs no longer show the smoke search"
    for command in sorted(commands):
        sweep = tmp_path / "sweep"
        args = [*shlex.split(command)[3:], f"hydra.sweep.dir={sweep}"]
        code, out = finish(start(*args, cwd=tmp_path, env={"QUICKDRAW_DATA": str(tmp_path)}))
        assert code == 0, out[-4000:]
        search = OmegaConf.load(ROOT / "quickdraw/conf/hparams_search/optuna_smoke.yaml")
        trials = trials_of(sweep)
        assert sorted(trials) == list(range(search.hydra.sweeper.n_trials))
        assert {t["state"] for t in trials.values()} <= {"COMPLETE", "PRUNED"}
        study = load(str(sweep / "optuna.journal"), "quickdraw-smoke")
        assert {t.number: t.state.name for t in study.trials} == {
            n: t["state"] for n, t in trials.items()
        }
        best = OmegaConf.load(sweep / "optimization_results.yaml")
        assert best.best_value == pytest.approx(study.best_value)
        summary = (sweep / "summary.md").read_text()
        assert "| job | state |" in summary and "COMPLETE" in summary
        for figure in ("optimization_history.png", "param_importances.png"):
            assert (sweep / figure).stat().st_size > 1000, f"{figure} missing"
        for number, trial in trials.items():  # the sampled values reached the run
            config = OmegaConf.load(sweep / str(number) / ".hydra" / "config.yaml")
            assert config.data.batch_size == trial["params"]["data.batch_size"]


@pytest.mark.parametrize("search", SEARCHES, ids=lambda p: p.stem)
def test_every_search_space_fits_the_experiments_its_comment_names(search):
    """Every batch size a search may draw fits an epoch of each experiment its header names."""
    header = "".join(line for line in search.read_text().splitlines(True) if line.startswith("#"))
    named = set(re.findall(r"experiment=(\w+)", header))
    named |= {m for m in re.findall(r"\b(\w+)(?:,|\)|:)", header.split("Fits", 1)[-1])
              if (ROOT / f"quickdraw/conf/experiment/{m}.yaml").is_file()}  # fmt: skip
    named |= {p.stem for g in re.findall(r"\b(\w+)_\*", header)
              for p in (ROOT / "quickdraw/conf/experiment").glob(f"{g}_*.yaml")}  # fmt: skip
    assert named, f"{search.name}'s header names no experiment"
    for experiment in sorted(named):
        cfg = compose_config("train", [f"hparams_search={search.stem}", f"experiment={experiment}"],
                             return_hydra_config=True)  # fmt: skip
        space = cfg.hydra.sweeper.params.get("data.batch_size", str(cfg.data.batch_size))
        sizes = [int(s) for s in re.findall(r"\d+", space)]
        # With no store or source, a run trains on the generated set; else on the data's 340 classes.
        generated = not cfg.data.get("store") and not cfg.data.get("source")
        classes = len(GENERATED_CLASSES) if generated else 340
        assert max(sizes) <= cfg.data.per_class * classes, (
            f"{search.stem} draws data.batch_size={max(sizes)} but experiment={experiment} "
            f"serves {cfg.data.per_class * classes} drawings an epoch"
        )


@pytest.mark.slow
def test_pruned_and_failed_trials_are_recorded_and_the_search_goes_on(tiny, tmp_path):
    """A pruner that stops every trial at its first validation, then trials that cannot run."""
    sweep = tmp_path / "pruned"
    always = "{_target_:optuna.pruners.ThresholdPruner,lower:1.1}"  # MAP@3 never reaches 1.1
    code, out = finish(start(
        "hparams_search=optuna_smoke", "experiment=smoke", *tiny, "hydra.sweeper.n_trials=2",
        f"hydra.sweeper.pruner={always}", f"hydra.sweep.dir={sweep}", "logger=mlflow",
        f"logger.mlflow.store_dir={tmp_path / 'mlruns'}", cwd=tmp_path,
    ))  # fmt: skip
    assert code == 0, out[-4000:]
    trials = trials_of(sweep)
    assert [t["state"] for t in trials.values()] == ["PRUNED", "PRUNED"]
    for number in trials:
        metrics = json.loads((sweep / str(number) / "metrics.json").read_text())
        assert metrics["status"] == "pruned" and "pruned after epoch 0" in metrics["pruned"]
        assert metrics["epochs"] <= 1, "a pruned trial should stop, not run its 3 epochs"
        assert not any(k.startswith("test/") for k in metrics)
        assert (sweep / str(number) / "checkpoints" / "last.ckpt").is_file(), "stopped cleanly"
    assert (sweep / "summary.md").read_text().count("PRUNED") == 2
    study = load(str(sweep / "optuna.journal"), "quickdraw-smoke")
    assert [t.state.name for t in study.trials] == ["PRUNED", "PRUNED"]
    if importlib.util.find_spec("mlflow"):  # each trial a run of one MLflow experiment, tagged
        from mlflow.tracking import MlflowClient

        client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
        runs = client.search_runs([client.get_experiment_by_name("quickdraw-smoke").experiment_id])
        assert sorted(r.data.tags["optuna.trial"] for r in runs) == ["0", "1"]
        assert {r.data.tags["optuna.study"] for r in runs} == {"quickdraw-smoke"}
        assert {r.data.tags["status"] for r in runs} == {"pruned"}
        assert sorted(r.info.run_name for r in runs) == ["trial-0", "trial-1"]

    # batch 4096 cannot fit 240 drawings: each trial fails before training, with its reason
    for rate, expected in (("1.0", 0), ("0.0", 1)):
        sweep = tmp_path / f"failing-{rate}"
        code, out = finish(start(
            "hparams_search=optuna_smoke", "experiment=smoke", *tiny, "hydra.sweeper.n_trials=2",
            "data.batch_size=4096", f"hydra.sweeper.max_failure_rate={rate}",
            f"hydra.sweep.dir={sweep}", cwd=tmp_path,
        ))  # fmt: skip
        assert (code != 0) == bool(expected), out[-4000:]
        trials = trials_of(sweep)
        assert len(trials) == (1 if expected else 2), "max_failure_rate decides whether it goes on"
        assert all(
            t["state"] == "FAIL" and "data.batch_size" in t["reason"] for t in trials.values()
        )
        if expected:
            assert "max_failure_rate" in out
        assert "FAIL" in (sweep / "summary.md").read_text()


def shared_study(storage: str, tiny: list[str], tmp_path: Path) -> None:
    """Two workers started together with the same command share one study of 4 trials."""
    args = ["hparams_search=optuna_smoke", "experiment=smoke", *tiny, "trainer.max_epochs=1",
            f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=shared",
            "hydra.sweeper.n_trials=4", "hydra.sweeper.pruner=none"]  # fmt: skip
    workers = [start(*args, f"hydra.sweep.dir={tmp_path / f'w{i}'}", cwd=tmp_path) for i in (0, 1)]
    for code, out in map(finish, workers):
        assert code == 0, out[-4000:]
    from quickdraw.training.sweeper import counts

    # a trial asked in the same instant as the last one is told FAIL unrun, and does not count
    study = [t for t in load(storage, "shared").trials if counts(t)]
    ran = {**trials_of(tmp_path / "w0"), **trials_of(tmp_path / "w1")}
    assert len(study) == 4 and sorted(ran) == [t.number for t in study], "each trial once"
    assert not set(trials_of(tmp_path / "w0")) & set(trials_of(tmp_path / "w1"))
    assert all(t.state.name == "COMPLETE" for t in study)
    params = [tuple(sorted(t.params.items())) for t in study]
    assert len(set(params)) == 4, "two trials evaluated the same parameters"
    assert trials_of(tmp_path / "w0") and trials_of(tmp_path / "w1"), "one worker did it all"


@pytest.mark.slow
def test_two_workers_share_a_study_in_postgresql(tiny, tmp_path):
    try:
        with postgres_server() as url:
            shared_study(url, tiny, tmp_path)
    except Unavailable as why:
        pytest.skip(f"no PostgreSQL server: {why}")


def test_pruner_names_build_optunas_pruners_with_the_warmup():
    from quickdraw.core.errors import SettingError
    from quickdraw.training.study import build_pruner

    median = build_pruner("median", 3)
    assert isinstance(median, optuna.pruners.MedianPruner) and median._n_warmup_steps == 3
    hyperband = build_pruner("hyperband", 2)
    assert isinstance(hyperband, optuna.pruners.HyperbandPruner) and hyperband._min_resource == 2
    assert isinstance(build_pruner("none", 3), optuna.pruners.NopPruner)
    with pytest.raises(SettingError, match="hydra.sweeper.pruner=halving: choose one of"):
        build_pruner("halving", 3)


def test_only_trials_that_ran_count_towards_n_trials():
    """An interrupted, surplus or abandoned trial (FAIL, never run) is asked again later."""
    from quickdraw.training.sweeper import RAN, counts

    study = optuna.create_study()
    done, failed, cut, running = (study.ask() for _ in range(4))
    study.tell(done, 0.5)
    failed.set_user_attr(RAN, True)  # what the sweeper marks once a job has ended
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    study.tell(cut, state=optuna.trial.TrialState.FAIL)
    assert [counts(t) for t in study.trials] == [True, True, False, True]


def test_a_database_study_keeps_heartbeats(tmp_path):
    """A trial whose worker dies stops beating and is failed by the next worker."""
    from quickdraw.training.study import HEARTBEAT_GRACE_S, HEARTBEAT_S, open_storage

    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    assert storage.get_heartbeat_interval() == HEARTBEAT_S and HEARTBEAT_GRACE_S == 120
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    storage.record_heartbeat(trial._trial_id)
    time.sleep(1.1)  # heartbeats are kept to the second
    storage.grace_period = 0  # as if the grace period had passed without a beat
    optuna.storages.fail_stale_trials(study)
    assert study.trials[0].state.name == "FAIL"


@pytest.mark.slow
def test_two_workers_share_a_study_in_a_journal_file(tiny, tmp_path):
    storage = str(tmp_path / "shared" / "study.journal")
    shared_study(storage, tiny, tmp_path)
    ran_before = {**trials_of(tmp_path / "w0"), **trials_of(tmp_path / "w1")}
    # The same command again, one trial more: the study goes on from its 4 trials.
    code, out = finish(start(
        "hparams_search=optuna_smoke", "experiment=smoke", *tiny, "trainer.max_epochs=1",
        f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=shared",
        "hydra.sweeper.n_trials=5", "hydra.sweeper.pruner=none",
        f"hydra.sweep.dir={tmp_path / 'again'}", cwd=tmp_path,
    ))  # fmt: skip
    assert code == 0, out[-4000:]
    (again,) = trials_of(tmp_path / "again").values()  # only the missing trial runs
    assert again["state"] == "COMPLETE" and again["number"] > max(ran_before)


def test_a_refused_sweeper_setting_is_one_line_with_exit_code_2(tmp_path):
    """Errors of the sweeper itself (not of a trial) are reported as every command's are."""
    code, out = finish(start(
        "hparams_search=optuna_smoke", "experiment=smoke", "hydra.sweeper.pruner=medain",
        f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path,
    ), timeout=120)  # fmt: skip
    assert code == 2, out[-4000:]
    assert "Traceback" not in out and "hydra.sweeper.pruner=medain: choose one of" in out


def test_a_storage_that_is_a_folder_or_an_unknown_database_is_refused(tmp_path):
    from quickdraw.core.errors import SettingError
    from quickdraw.training.study import open_storage

    folder = tmp_path / "study.journal"
    folder.mkdir()
    with pytest.raises(SettingError, match="is a folder: give a journal file"):
        open_storage(str(folder))
    with pytest.raises(SettingError, match="knows no database .*'postgressql'.*scheme"):
        open_storage("postgressql://user:secret@localhost/optuna")


def test_a_worker_with_nothing_to_run_names_the_trials_still_running(caplog):
    """A killed worker's trial counts until its heartbeat is stale: the next worker says so."""
    from quickdraw.training.sweeper import OptunaSearch

    study = optuna.create_study(study_name="s")
    study.tell(study.ask(), 0.5)
    study.ask()  # left RUNNING, as by a worker killed with SIGKILL
    with caplog.at_level("INFO", logger="quickdraw.training.sweeper"):
        OptunaSearch()._nothing_to_run(study, 2)
    assert "of which 1 still RUNNING" in caplog.text and "120 s" in caplog.text


def test_an_interrupted_trial_says_so_in_its_folder_and_does_not_count(tmp_path):
    """Ctrl-C in a job: Lightning ends it with SystemExit; the trial is FAIL, unrun, explained."""
    from quickdraw.training.sweeper import OptunaSearch, counts

    search = OptunaSearch()
    search.config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    study = optuna.create_study(study_name="s")
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    (tmp_path / str(trial.number)).mkdir()  # the job had started
    search._abandon(study, [trial], SystemExit(1))
    assert study.trials[0].state.name == "FAIL" and not counts(study.trials[0])
    written = trials_of(tmp_path)[trial.number]
    assert written["state"] == "FAIL" and written["reason"].startswith("interrupted")
    assert "interrupted before its job ended" in (tmp_path / "summary.md").read_text()


def test_a_pruned_job_is_told_without_hydras_error_line(tmp_path, capsys):
    """Hydra's JobReturn.return_value prints "Error executing job" for any job that raised."""
    from hydra.core.utils import JobReturn, JobStatus

    from quickdraw.training.sweeper import OptunaSearch

    search = OptunaSearch()
    search.config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    study = optuna.create_study(study_name="s")
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    ret = JobReturn(
        status=JobStatus.FAILED, _return_value=optuna.TrialPruned("pruned after epoch 1")
    )
    assert search._tell(study, trial, ret) == "PRUNED"
    assert "Error executing job" not in capsys.readouterr().err
    assert trials_of(tmp_path)[trial.number]["reason"] == "pruned after epoch 1"


def test_max_failure_rate_is_a_share_of_n_trials_not_of_the_trials_run_so_far():
    """optuna.yaml's 0.1 lets 4 of 40 trials fail: a first trial out of memory ends nothing."""
    from quickdraw.training.sweeper import too_many_failures

    assert [too_many_failures(f, 40, 0.1) for f in range(1, 6)] == [False] * 4 + [True]
    assert too_many_failures(1, 3, 0.0) and not too_many_failures(2, 2, 1.0)


def test_the_documented_random_sampler_builds_with_the_optuna_search():
    """scaling.md: `hydra/sweeper/sampler=random`; TPE's settings must not reach RandomSampler."""
    from quickdraw.training.study import build_sampler

    cfg = compose_config("train", ["hparams_search=optuna", "experiment=resnet18",
                                   "hydra/sweeper/sampler=random"], return_hydra_config=True)  # fmt: skip
    assert isinstance(
        build_sampler(cfg.hydra.sweeper.sampler, shared=True), optuna.samplers.RandomSampler
    )
    tpe = compose_config(
        "train", ["hparams_search=optuna", "experiment=resnet18"], return_hydra_config=True
    )
    assert (
        tpe.hydra.sweeper.sampler.n_startup_trials == 10 and tpe.hydra.sweeper.sampler.seed is None
    )
