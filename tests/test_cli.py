"""The command surface: each command's --help, one error contract for all eight commands (train
included), and the checkpoint evaluate, predict, export and the demo find on their own."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import open_dict

from quickdraw import cli
from quickdraw.core.runs import RunDir
from tests.helpers.configs import compose_config
from tests.helpers.paths import ROOT

CONF = ROOT / "quickdraw" / "conf"
HYDRA_COMMANDS = ["train", "evaluate", "predict", "demo", "export", "convert"]
# Keys each --help explains (a sample of its main ones), and groups only training has.
KEYS = {
    "train": ["experiment", "model", "hardware", "data.source=", "data.store=", "ckpt_path=last"],
    "evaluate": ["ckpt_path=", "run_dir=", "runs_root", "input=", "labels=", "store=", "prefix="],
    "predict": ["ckpt_path=", "run_dir=", "runs_root", "input=", "output=", "strict=", "backend="],
    "demo": ["ckpt_path=", "run_dir=", "runs_root", "server_name=", "server_port=", "share="],
    "export": ["ckpt_path=", "run_dir=", "runs_root", "format=", "out=", "quantize=int8"],
    "convert": ["source=", "store=", "workers=", "overwrite=", "verify=", "settings.", "npz.to="],
}
TRAINING_ONLY = ["hparams_search", "callbacks", "experiment=", "trainer."]


def run(
    *args: str, env: dict | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd or ROOT,
        env={**os.environ, **(env or {})},
    )


def one_error(caplog) -> str:
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0], errors
    return errors[0]


# -- --help ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def helps() -> dict[str, str]:
    """Each Hydra command's --help screen, as a user gets it (exit code checked here)."""
    screens = {}
    for name in HYDRA_COMMANDS:
        done = run("-m", f"quickdraw.{name}", "--help")
        assert done.returncode == 0, done.stderr[-3000:]
        screens[name] = done.stdout
    return screens


@pytest.mark.parametrize("name", HYDRA_COMMANDS)
def test_help_has_a_usage_line_its_keys_and_two_examples(helps, name):
    screen = helps[name]
    assert screen.startswith(f"usage: python -m quickdraw.{name} "), screen[:200]
    assert f"quickdraw-{name}" in screen  # the console script
    examples = screen.split("\nexamples:\n")[1].split("\n\n")[0].splitlines()
    assert len([e for e in examples if e.startswith(f"  python -m quickdraw.{name}")]) >= 2
    missing = [key for key in KEYS[name] if key not in screen]
    assert not missing, f"{name} --help does not explain {missing}"
    # Hydra's default screen: boilerplate, a list of every group of the folder, the whole config
    for default in ["powered by Hydra", "== Configuration groups ==", "== Config ==", "_target_"]:
        assert default not in screen


@pytest.mark.parametrize("name", ["evaluate", "predict", "demo", "export", "convert"])
def test_help_shows_no_training_groups(helps, name):
    shown = [group for group in TRAINING_ONLY if group in helps[name]]
    assert not shown, f"{name} --help lists training-only {shown}"


def test_train_help_lists_every_option_of_its_groups(helps):
    section = helps["train"].split("\ngroups (group=option):\n")[1].split("\n\n")[0]
    shown: dict[str, str] = {}
    for line in section.splitlines():  # "  group   options...", continued on deeper lines
        if not line.startswith("   "):
            group = line.split()[0]
        shown[group] = shown.get(group, "") + line
    for group in ["experiment", "model", "hardware", "trainer", "callbacks", "logger",
                  "hparams_search", "debug"]:  # fmt: skip
        for option in sorted(p.stem for p in (CONF / group).glob("*.yaml")):
            assert re.search(rf"\b{option}\b", shown[group]), f"train --help omits {group}={option}"


def test_help_loads_no_torch_lightning_or_gradio():
    """The help screen needs none of them: importing them took seconds before it showed."""
    code = (
        "import runpy, sys\n"
        "sys.argv = ['train', '--help']\n"
        "try:\n    runpy.run_module('quickdraw.{name}', run_name='__main__')\n"
        "finally:\n    print(sorted(m for m in ('torch', 'lightning', 'gradio') if m in sys.modules))"
    )
    for name in HYDRA_COMMANDS:
        done = run("-c", code.format(name=name))
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.strip().splitlines()[-1] == "[]", (name, done.stdout[-500:])


def test_a_template_that_shows_the_groups_still_gets_them():
    """The group listing is computed only when the help template shows it, and then in full."""
    done = run("-m", "quickdraw.evaluate", "--help", "hydra.help.template=$APP_CONFIG_GROUPS")
    assert done.returncode == 0, done.stderr[-3000:]
    listed = next(line for line in done.stdout.splitlines() if line.startswith("experiment: "))
    assert {"ensemble_head", "ensemble_mean", "smoke"} <= set(listed[12:].split(", "))


def test_the_config_is_still_shown_on_request():
    done = run("-m", "quickdraw.train", "--cfg", "job", "--package", "data")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "per_class:" in done.stdout and "_target_: quickdraw.data.datamodule" in done.stdout


@pytest.mark.parametrize("name", ["report", "download"])
def test_argparse_commands_help_the_same_way(name):
    done = run("-m", f"quickdraw.{name}", "--help")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith(f"usage: python -m quickdraw.{name} ")
    examples = done.stdout.split("\nexamples:\n")[1].splitlines()
    assert len([e for e in examples if e.startswith(f"  python -m quickdraw.{name}")]) >= 2


# -- one error contract ------------------------------------------------------------------------------
def test_train_with_a_bad_setting_is_one_line_and_exit_2(tiny_overrides, tmp_path):
    args = ["-m", "quickdraw.train", *tiny_overrides, "data.sampling=sometimes",
            f"hydra.run.dir={tmp_path / 'run'}", "logger=none"]  # fmt: skip
    done = run(*args, cwd=tmp_path)
    said = done.stdout + done.stderr  # Hydra logs to stdout
    assert done.returncode == 2, said[-3000:]
    assert "Traceback" not in said
    errors = [line for line in said.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and "data.sampling must be one of" in errors[0], said[-3000:]
    full = run(*args[:-2], f"hydra.run.dir={tmp_path / 'full'}", env={"HYDRA_FULL_ERROR": "1"})
    assert full.returncode == 1 and "Traceback" in full.stderr
    assert "SettingError: data.sampling must be one of" in full.stderr


def test_a_project_error_inside_instantiate_is_reported_as_itself(tiny_config, tmp_path, caplog):
    """hydra.utils.instantiate wraps what a model's constructor raises: the cause is the message."""
    cfg = tiny_config(tmp_path, "experiment=smoke", "++model.net.stem=wide")
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as stop:
        cli.train.__wrapped__(cfg)
    assert stop.value.code == 2
    assert one_error(caplog) == "stem must be 'imagenet' or 'small', got 'wide'"


def test_a_renamed_key_names_its_new_name(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["convert", "store=s", "export.to=/tmp/npz"])
    with pytest.raises(SystemExit) as stop:
        cli.convert()
    assert stop.value.code == 2
    assert "export.to is now called npz.to: give npz.to=/tmp/npz" in capsys.readouterr().err


def test_argparse_commands_report_project_errors_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.download(["--categories-file", str(tmp_path / "missing.txt")])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and "missing.txt" in err[0], err


# -- the checkpoint a command runs ------------------------------------------------------------------
def command_config(name: str, out: Path, *overrides: str):
    cfg = compose_config(name, list(overrides))
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    return cfg


@pytest.mark.parametrize("name", ["evaluate", "predict", "export", "demo"])
def test_each_command_finds_the_same_checkpoint(name, smoke_run, tmp_path):
    best = RunDir(smoke_run).best_checkpoint()
    assert best is not None
    given = command_config(name, tmp_path, f"ckpt_path={best}")
    in_run = command_config(name, tmp_path, f"run_dir={smoke_run}")
    latest = command_config(name, tmp_path, f"runs_root={smoke_run}")
    assert cli.checkpoint(given) == cli.checkpoint(in_run) == cli.checkpoint(latest) == best


def test_the_command_says_which_checkpoint_it_runs_and_why(smoke_run, tmp_path, caplog):
    """With nothing given, evaluate and predict used to score a checkpoint without naming it."""
    best = RunDir(smoke_run).best_checkpoint()
    with caplog.at_level(logging.INFO, logger="quickdraw"):
        cli.checkpoint(command_config("evaluate", tmp_path, f"runs_root={smoke_run}"))
    assert f"checkpoint: {best} (run {smoke_run.name}: the best val/map3" in caplog.text
    assert "only trial runs exist (experiment=smoke)" in caplog.text


@pytest.mark.parametrize("name", ["evaluate", "predict", "export", "demo"])
def test_with_no_run_each_command_says_how_to_make_one(name, tmp_path, caplog):
    overrides = {"evaluate": ["store=s"], "predict": ["input=i.csv"]}.get(name, [])
    cfg = command_config(name, tmp_path, f"runs_root={tmp_path / 'none'}", *overrides)
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as stop:
        getattr(cli, name).__wrapped__(cfg)
    message = one_error(caplog)
    assert stop.value.code == 2 and "No trained checkpoint found under" in message
    assert "python -m quickdraw.train" in message and "run_dir=RUN" in message
    empty = tmp_path / "empty"
    empty.mkdir()
    cfg = command_config(name, tmp_path, f"run_dir={empty}", *overrides)
    caplog.clear()
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit):
        getattr(cli, name).__wrapped__(cfg)
    assert f"run_dir={empty} has no best checkpoint" in one_error(caplog)


def test_evaluate_with_nothing_given_scores_the_best_run(smoke_run, tiny_store, tmp_path):
    out = tmp_path / "eval"
    cli.evaluate.__wrapped__(
        command_config("evaluate", out, f"runs_root={smoke_run}", f"store={tiny_store}")
    )
    recorded = json.loads((out / "metrics.json").read_text())["ckpt_path"]
    assert recorded == str(RunDir(smoke_run).best_checkpoint())


# -- a user's own config folder ---------------------------------------------------------------------
def test_a_users_config_folder_adds_options_and_cannot_shadow_shipped_ones(tmp_path):
    """What docs/guides/configs.md says: a new name in `--config-dir` is a new option (and may start
    from a shipped one); a file named like a shipped option is not read, the shipped one is."""
    model = tmp_path / "conf" / "model"
    model.mkdir(parents=True)
    (model / "my_resnet.yaml").write_text("defaults: [resnet18]\nloss: {label_smoothing: 0.1}\n")
    (model / "resnet18.yaml").write_text(
        "defaults: [resnet18_penalized]\nloss: {label_smoothing: 0.2}\n"
    )

    def composed(option: str) -> str:
        done = run("-m", "quickdraw.train", "--config-dir", str(tmp_path / "conf"), f"model={option}", "--cfg", "job",
                   cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    mine = composed("my_resnet")
    assert "label_smoothing: 0.1" in mine and "quickdraw.models.components.resnet" in mine
    shipped = composed("resnet18")
    assert "label_smoothing: 0.2" not in shipped and "label_smoothing: 0.0" in shipped


@pytest.mark.parametrize("name", ["evaluate", "predict", "demo", "export"])
def test_help_says_ckpt_path_takes_a_model_folder(helps, name):
    keys = helps[name].split("\nkeys:\n")[1].split("\nexamples:\n")[0]
    assert "model folder written by" in keys.split("run_dir=RUN")[0], keys[:400]
