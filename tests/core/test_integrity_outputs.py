"""An output never destroys an input or another run: outputs that are inputs are refused before any
work, run folders of commands started together never collide, training never mixes two runs."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from quickdraw.core.outputs import OverwriteError, refuse_overwrite, unique_folder
from quickdraw.core.runs import RunDir, RunFolderError
from quickdraw.data.conversion import convert
from quickdraw.data.formats.sketchrnn_writer import write_npz
from quickdraw.deploy.onnx import export_checkpoint
from quickdraw.evaluation.report import write_report
from quickdraw.evaluation.score import refuse_overwrite_of
from quickdraw.evaluation.submission import write_submission
from tests.helpers.drawings import DEMO_CLASSES, SQUARE, kaggle_row, write_csv


def digest(folder: Path) -> dict[str, str]:
    """Every file under `folder` (links not followed) -> the SHA-256 of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def command(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


# -- 1. an output path that is an input is refused, naming both ------------------------------------
def spellings(tmp_path: Path, target: Path) -> dict[str, Path]:
    """Other names of `target` (a file or folder beside tmp_path's `x/`): the kind's family."""
    (tmp_path / "x").mkdir(exist_ok=True)
    link = tmp_path / f"link-{target.name}"
    link.symlink_to(target)
    names = {
        "same": target,
        "dotdot": tmp_path / "x" / ".." / target.relative_to(tmp_path),
        "symlink": link,
    }
    if target.is_file():
        hard = tmp_path / f"hard-{target.name}"
        os.link(target, hard)
        names["hardlink"] = hard
    return names


@pytest.mark.parametrize("spelling", ["same", "dotdot", "symlink", "hardlink"])
def test_submission_over_its_input_is_refused_before_reading(tmp_path, spelling):
    test = write_csv(tmp_path / "T.csv", [kaggle_row(1, "cat")])
    before = test.read_bytes()
    output = spellings(tmp_path, test)[spelling]
    with pytest.raises(OverwriteError, match="output=.* is input=") as e:
        write_submission(None, str(test), output, 8)  # refused before the model is used
    assert str(output) in str(e.value) and str(test) in str(e.value)
    assert test.read_bytes() == before


@pytest.mark.parametrize("role", ["prior", "ckpt_path"])
def test_submission_over_its_prior_or_checkpoint_is_refused(tmp_path, role):
    test = write_csv(tmp_path / "T.csv", [kaggle_row(1, "cat")])
    other = tmp_path / f"{role}.file"
    other.write_text("word,count\ncat,1\n")
    with pytest.raises(OverwriteError, match=f"is {role}="):
        write_submission(None, str(test), other, 8, **{role: str(other)})
    assert other.read_text() == "word,count\ncat,1\n"


def test_submission_whose_unreadable_list_is_the_input_is_refused(tmp_path):
    # sub.csv's unreadable drawings go to sub.unreadable.csv (deleted when there are none).
    test = write_csv(tmp_path / "sub.unreadable.csv", [kaggle_row(1, "cat")])
    with pytest.raises(OverwriteError, match="unreadable list"):
        write_submission(None, str(test), tmp_path / "sub.csv", 8)
    assert test.is_file()


def test_submission_inside_an_input_folder_is_refused(tmp_path):
    folder = tmp_path / "drawings"
    write_csv(folder / "cat.csv", [kaggle_row(1, "cat")])
    with pytest.raises(OverwriteError, match="lies inside input="):
        write_submission(None, str(folder), folder / "submission.csv", 8)


def test_an_earlier_output_is_replaced_and_said(tmp_path, caplog):
    earlier = tmp_path / "submission.csv"
    earlier.write_text("key_id,word\n")
    refuse_overwrite({"output": earlier}, {"input": tmp_path / "T.csv"}, "")
    assert f"output={earlier} exists: replacing it" in caplog.text


@pytest.mark.slow
def test_predict_command_leaves_its_test_file_byte_identical(demo_checkpoint, tmp_path):
    test = write_csv(tmp_path / "T.csv", [kaggle_row(i, "cat") for i in range(5)])
    before = test.read_bytes()
    for output in ("T.csv", "./x/../T.csv"):
        (tmp_path / "x").mkdir(exist_ok=True)
        done = command(
            "quickdraw.predict",
            f"ckpt_path={demo_checkpoint}",
            "input=T.csv",
            f"output={output}",
            f"hydra.run.dir={tmp_path / 'run'}",
            cwd=tmp_path,
        )
        assert done.returncode == 2, done.stderr[-2000:]
        assert f"is input={test}" in done.stderr + done.stdout
        assert test.read_bytes() == before


@pytest.fixture
def npz_source(tiny_store, tmp_path) -> tuple[Path, Path]:
    """A folder of sketch-rnn .npz files and the store converted from it."""
    folder = tmp_path / "downloads" / "sketchrnn"
    write_npz(tiny_store, folder, progress=False)
    store = tmp_path / "store"
    convert(folder, store, workers=1, progress=False)
    return folder, store


@pytest.mark.parametrize("to", ["same", "dotdot", "symlink", "parent", "store", "inside-store"])
def test_export_over_the_stores_source_or_the_store_is_refused(npz_source, tmp_path, to):
    folder, store = npz_source
    out = {"parent": folder.parent, "store": store, "inside-store": store / "npz"}.get(to)
    out = out or spellings(tmp_path, folder)[to]
    before, store_before = digest(folder), digest(store)
    with pytest.raises(OverwriteError, match=f"npz.to={out}") as e:
        write_npz(store, out, progress=False)
    assert str(store if "store" in to else folder) in str(e.value)
    assert digest(folder) == before and digest(store) == store_before


def test_export_elsewhere_still_writes(npz_source, tmp_path):
    written = write_npz(npz_source[1], tmp_path / "elsewhere", progress=False)
    assert sorted(p.stem for p in (tmp_path / "elsewhere").glob("*.npz")) == sorted(written)


@pytest.mark.slow
def test_convert_export_command_keeps_the_original_npz_files(npz_source, tmp_path):
    folder, store = npz_source
    before = digest(folder)
    done = command(
        "quickdraw.convert",
        f"store={store}",
        f"npz.to={folder}",
        f"hydra.run.dir={tmp_path / 'run'}",
        "progress=false",
        cwd=tmp_path,
    )
    assert done.returncode != 0
    assert f"npz.to={folder} holds the store's source {folder}" in done.stderr + done.stdout
    assert digest(folder) == before


@pytest.mark.parametrize("where", ["same", "inside", "holds"])
def test_store_that_is_in_or_holds_its_source_is_refused_even_with_overwrite(tmp_path, where):
    source = write_csv(tmp_path / "data" / "cat.csv", [kaggle_row(1, "cat")]).parent
    store = {"same": source, "inside": source / "store", "holds": tmp_path}[where]
    with pytest.raises(OverwriteError, match=f"store={store}"):
        convert(source, store, overwrite=True, progress=False)  # would delete the source
    assert (source / "cat.csv").is_file()


def test_evaluation_into_a_training_run_or_over_its_input_is_refused(tmp_path):
    run = tmp_path / "train-run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "metrics.json").write_text('{"kind": "train", "test/acc": 0.5}')
    with pytest.raises(OverwriteError, match="training run's folder"):
        refuse_overwrite_of(run, input=str(tmp_path / "T.csv"))
    assert json.loads((run / "metrics.json").read_text())["kind"] == "train"
    labels = write_csv(tmp_path / "eval" / "per_class.csv", [kaggle_row(1, "cat")])
    with pytest.raises(OverwriteError, match="per_class.csv.* is labels="):
        refuse_overwrite_of(labels.parent, input=str(tmp_path / "T.csv"), labels=str(labels))


@pytest.mark.parametrize("where", ["store", "inside-store"])
def test_onnx_export_into_its_calibration_store_is_refused(tiny_store, tmp_path, where):
    from quickdraw.deploy.onnx import Quantization

    out = tiny_store if where == "store" else tiny_store / "export"
    before = digest(tiny_store)
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"not read: refused first")
    with pytest.raises(OverwriteError, match="quantization.store="):
        export_checkpoint(ckpt, out, "onnx", "int8", Quantization(store=str(tiny_store)))
    assert digest(tiny_store) == before and not (tiny_store / "export").exists()


def test_onnx_export_over_its_checkpoint_is_refused(tmp_path):
    ckpt = tmp_path / "model.onnx"  # a checkpoint saved under the export's file name
    ckpt.write_bytes(b"weights")
    with pytest.raises(OverwriteError, match="is ckpt_path="):
        export_checkpoint(ckpt, tmp_path)
    assert ckpt.read_bytes() == b"weights"


def test_report_inside_a_run_it_reads_is_refused_but_its_report_folder_is_fine(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "metrics.json").write_text('{"kind": "train"}')
    before = digest(run)
    for out in (run, run / "checkpoints"):
        with pytest.raises(OverwriteError, match="lies inside the run folder"):
            write_report([tmp_path], out, evaluate=False)
    assert digest(run) == before
    assert write_report([run], None, evaluate=False) == run / "report" / "report.md"


# -- 2. run folders of commands started together never collide -------------------------------------
def test_unique_folder_gives_each_of_many_threads_its_own(tmp_path):
    got: list[str] = []
    threads = [
        threading.Thread(target=lambda: got.append(unique_folder(str(tmp_path / "t"))))
        for _ in range(16)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 16 and all(Path(p).is_dir() for p in got)
    assert sorted(got) == sorted(
        [str(tmp_path / "t")] + [f"{tmp_path / 't'}_{i}" for i in range(1, 16)]
    )


def start_together(commands: list[list[str]], cwd: Path) -> list[subprocess.CompletedProcess]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", *c],
            cwd=cwd,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for c in commands
    ]
    results = []
    for p, c in zip(procs, commands, strict=True):
        out, err = p.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(c, p.returncode, out, err))
    return results


@pytest.mark.slow
def test_exports_started_together_get_a_run_folder_each(tiny_store, tmp_path):
    """The default run folder (time to the second): four commands at once, four folders."""
    outs = [tmp_path / f"out{i}" for i in range(4)]
    done = start_together(
        [
            [
                "quickdraw.convert",
                f"store={tiny_store}",
                f"npz.to={o}",
                f"paths.log_dir={tmp_path}",
                "progress=false",
            ]
            for o in outs
        ],
        tmp_path,
    )
    assert all(d.returncode == 0 for d in done), [d.stderr[-1000:] for d in done]
    folders = sorted((tmp_path / "convert").iterdir())
    assert len(folders) == 4
    named = {
        next(o for o in OmegaConf.load(f / ".hydra" / "overrides.yaml") if "npz.to" in o)
        for f in folders
    }
    assert named == {f"npz.to={o}" for o in outs}
    assert all(sorted(o.glob("*.npz")) for o in outs)


@pytest.mark.slow
def test_evaluations_of_the_same_second_keep_their_own_results(demo_checkpoint, tmp_path):
    """The same base folder for all (a collision for certain): each keeps its input and result."""
    word = DEMO_CLASSES[0]
    inputs = {
        n: write_csv(tmp_path / f"in{n}.csv", [kaggle_row(i, word, SQUARE) for i in range(n)])
        for n in (3, 4, 5)
    }
    base = "hydra.run.dir='${unique_dir:" + str(tmp_path / "evaluate" / "same") + "}'"
    done = start_together(
        [
            ["quickdraw.evaluate", f"ckpt_path={demo_checkpoint}", f"input={path}", base]
            for path in inputs.values()
        ],
        tmp_path,
    )
    assert all(d.returncode == 0 for d in done), [d.stderr[-1000:] for d in done]
    folders = sorted((tmp_path / "evaluate").iterdir())
    assert [f.name for f in folders] == ["same", "same_1", "same_2"]
    for folder in folders:
        overrides = OmegaConf.load(folder / ".hydra" / "overrides.yaml")
        given = next(o for o in overrides if o.startswith("input="))
        n = next(n for n, p in inputs.items() if given == f"input={p}")
        assert RunDir(folder).metrics()["drawings"] == n, folder


TINY_RUN = ["experiment=smoke", "trainer.max_epochs=1", "test=false", "data.eval_batch_size=8"]


@pytest.mark.slow
def test_ddp_ranks_and_multirun_jobs_share_the_one_folder_made_for_them(tiny_overrides, tmp_path):
    """Hydra resolves a run folder several times, Lightning re-runs the command for rank 1 with
    it, and joblib's workers get a copy of each job's config: one folder each, no stray one."""
    train = [*tiny_overrides, *TINY_RUN, f"paths.log_dir={tmp_path}"]
    ddp = command("quickdraw.train", *train, "trainer=ddp_cpu", "trainer.devices=2", cwd=tmp_path)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    (run,) = (tmp_path / "train" / "runs").iterdir()
    assert RunDir(run).metrics()["epochs"] == 1
    lr = "model.optimizer.lr=1e-3,3e-3"
    sweep = command("quickdraw.train", "-m", *train, "hydra/launcher=local", lr, cwd=tmp_path)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    (root,) = (tmp_path / "train" / "multiruns").iterdir()
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["0", "1"]
    assert len(list((tmp_path / "train" / "runs").iterdir())) == 1


# -- 3. training never mixes two runs in one folder ------------------------------------------------
def earlier_run(folder: Path) -> Path:
    """A finished earlier run's files, plus Hydra's own of the run starting now."""
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "epoch=7-step=99.ckpt").write_bytes(b"old weights")
    (folder / "checkpoints" / "last.ckpt").write_bytes(b"old last")
    (folder / "tensorboard").mkdir()
    (folder / "tensorboard" / "events.out.tfevents.1.old").write_bytes(b"old events")
    (folder / "tensorboard" / "hparams.yaml").write_text("old: run\n")
    (folder / "metrics.json").write_text('{"kind": "train", "test/acc": 0.9}')
    (folder / ".hydra").mkdir()
    (folder / ".hydra" / "config.yaml").write_text("this: run\n")
    (folder / "train.log").write_text("log\n")
    return folder


def test_training_into_an_earlier_run_is_refused_and_names_both_ways_out(tiny_config, tmp_path):
    from quickdraw.training.fit import train

    run = earlier_run(tmp_path / "run")
    before = digest(run)
    with pytest.raises(RunFolderError, match="ckpt_path=last.*overwrite=true"):
        train(tiny_config(run, "experiment=smoke"))
    assert digest(run) == before


@pytest.mark.slow
def test_training_command_into_an_earlier_run_exits_non_zero(tiny_overrides, tmp_path):
    run = earlier_run(tmp_path / "run")
    before = digest(run)  # Hydra's .hydra/ and log of the earlier run too: refused before them
    done = command(
        "quickdraw.train", "experiment=smoke", *tiny_overrides, f"hydra.run.dir={run}", cwd=tmp_path
    )
    assert done.returncode == 2
    assert "holds an earlier run" in done.stdout + done.stderr
    assert digest(run) == before


@pytest.mark.parametrize(
    "task,settings,refused",
    [
        ("train", {}, True),
        ("train", {"ckpt_path": "last"}, False),
        ("train", {"overwrite": True}, False),
        ("evaluate", {}, True),
        ("predict", {}, True),
        ("export", {}, True),
        ("convert", {}, True),
    ],
)
@pytest.mark.parametrize("spelling", ["same", "dotdot", "symlink"])
def test_a_given_run_folder_holding_a_training_run_is_refused_before_hydra_writes(
    tmp_path, task, settings, refused, spelling, capsys
):
    """Hydra writes `.hydra/config.yaml`, `overrides.yaml` and its log into `hydra.run.dir`
    before the command starts: the check runs before that (a Hydra callback), or a refused
    command would still have replaced the earlier run's record of its settings."""
    from quickdraw.core.runs import KeepEarlierRuns

    run = earlier_run(tmp_path / "run")
    given = spellings(tmp_path, run)[spelling]
    config = OmegaConf.create(
        {
            "task_name": task,
            **settings,
            "hydra": {"overrides": {"hydra": [f"hydra.run.dir={given}"]}},
        }
    )
    if not refused:
        KeepEarlierRuns().on_run_start(config)
        return
    with pytest.raises(SystemExit) as e:
        KeepEarlierRuns().on_run_start(config)
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"{given} holds a" in err and "hydra.run.dir out" in err
    # A folder Hydra makes itself is new, and an evaluation folder may be evaluated into again.
    KeepEarlierRuns().on_run_start(OmegaConf.create({"task_name": task, "hydra": {"overrides": {"hydra": []}}}))  # fmt: skip
    evaluation = tmp_path / "ev"
    evaluation.mkdir()
    (evaluation / "metrics.json").write_text('{"kind": "evaluate"}')
    if task != "train":
        again = {"task_name": task, "hydra": {"overrides": {"hydra": [f"hydra.run.dir={evaluation}"]}}}  # fmt: skip
        KeepEarlierRuns().on_run_start(OmegaConf.create(again))


@pytest.mark.slow
def test_a_refused_evaluation_leaves_the_training_runs_hydra_files_as_they_were(
    demo_checkpoint, tmp_path
):
    run = earlier_run(tmp_path / "run")
    test = write_csv(tmp_path / "T.csv", [kaggle_row(1, "circle", SQUARE)])
    before = digest(run)
    done = command(
        "quickdraw.evaluate", f"ckpt_path={demo_checkpoint}", f"input={test}",
        f"hydra.run.dir={run}", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2 and "holds a training run" in done.stderr
    assert digest(run) == before


def test_a_file_output_that_is_a_folder_is_refused_before_work(tmp_path):
    """`output=DIR` would be found only when the finished file is moved in (a bare IsADirectoryError)."""
    test = write_csv(tmp_path / "T.csv", [kaggle_row(1, "cat")])
    (tmp_path / "out").mkdir()
    (tmp_path / "x").mkdir()
    for output in (tmp_path / "out", tmp_path / "x" / ".." / "out", tmp_path / "out/"):
        with pytest.raises(OverwriteError, match="output=.* is a folder: name a file"):
            write_submission(None, str(test), output, 8)  # refused before the model is used
    (tmp_path / "ev" / "metrics.json").mkdir(parents=True)  # evaluate's files: the same check
    with pytest.raises(OverwriteError, match=r"\(metrics.json\) .* is a folder"):
        refuse_overwrite_of(tmp_path / "ev", input=str(test))


def test_overwrite_clears_the_earlier_run_and_keeps_hydras_files(tiny_config, tmp_path):
    from quickdraw.training.fit import train

    run = earlier_run(tmp_path / "run")
    train(tiny_config(run, "experiment=smoke", "trainer.max_epochs=1", "overwrite=true"))
    assert not (run / "checkpoints" / "epoch=7-step=99.ckpt").exists()
    assert (run / "checkpoints" / "last.ckpt").read_bytes() != b"old last"
    assert [p.name for p in (run / "tensorboard").glob("*.old")] == []
    assert "old" not in OmegaConf.load(run / "tensorboard" / "hparams.yaml")
    assert RunDir(run).metrics()["epochs"] == 1
    assert (run / ".hydra" / "config.yaml").read_text() == "this: run\n"
    assert (run / "train.log").is_file()


@pytest.mark.parametrize("ckpt", ["last", "auto", "inside"])
def test_resuming_the_folder_is_allowed_but_not_with_overwrite(tmp_path, ckpt):
    run = RunDir(earlier_run(tmp_path / "run"))
    ckpt_path = str(run.last_checkpoint) if ckpt == "inside" else ckpt
    run.prepare_training(ckpt_path)  # resumes: nothing to refuse
    with pytest.raises(ValueError, match="overwrite=true would delete the checkpoint"):
        run.prepare_training(ckpt_path, overwrite=True)
    assert run.last_checkpoint.read_bytes() == b"old last"


def test_auto_without_a_last_checkpoint_starts_afresh(tmp_path):
    run = RunDir(earlier_run(tmp_path / "run"))
    run.last_checkpoint.unlink()  # a requeued job that died before its first checkpoint
    run.prepare_training("auto")
    assert [p.name for p in run.earlier_run()] == []
    assert (run.path / ".hydra" / "config.yaml").is_file()


def test_overwrite_deletes_only_a_runs_own_files(tmp_path):
    run = RunDir(earlier_run(tmp_path / "run"))
    (run.path / "thesis.tex").write_text("mine")
    run.prepare_training(None, overwrite=True)
    assert sorted(p.name for p in run.path.iterdir()) == [".hydra", "thesis.tex", "train.log"]


def test_a_folder_without_an_earlier_run_is_a_fresh_start(tmp_path):
    """Hydra's own files, and files no run writes (a store beside the run), are no earlier run."""
    (tmp_path / ".hydra").mkdir()
    (tmp_path / "train.log").write_text("")
    (tmp_path / "store").mkdir()
    RunDir(tmp_path).prepare_training(None)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hydra", "store", "train.log"]


@pytest.mark.parametrize("rank", ["LOCAL_RANK", "RANK", "NODE_RANK", "SLURM_PROCID"])
def test_only_the_launching_process_decides(tmp_path, monkeypatch, rank):
    """DDP ranks started by rank 0 find the folder it has begun to fill: they never refuse it."""
    run = RunDir(earlier_run(tmp_path / "run"))
    monkeypatch.setenv(rank, "1")
    run.prepare_training(None)
    monkeypatch.setenv(rank, "0")
    with pytest.raises(RunFolderError):
        run.prepare_training(None)


@pytest.mark.parametrize("fmt", ["onnx", "hub"])
def test_export_into_a_file_is_refused_in_one_line_before_any_work(tmp_path, fmt):
    from quickdraw.deploy.hub import export_hub

    ckpt, notes = tmp_path / "best.ckpt", tmp_path / "notes.txt"
    ckpt.write_bytes(b"not read: refused first")
    notes.write_text("kept")
    with pytest.raises(OverwriteError, match=r"notes\.txt is a file, not a folder: name a folder"):
        export_checkpoint(ckpt, notes) if fmt == "onnx" else export_hub(ckpt, notes / "sub")
    assert notes.read_text() == "kept"
