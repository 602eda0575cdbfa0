"""Running the commands as a user does (a child process) or as Hydra would call them (in process),
and a free loopback port for the servers they start."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import open_dict

from tests.helpers.configs import compose_config


def run_module(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`python -m module args` as a user runs it, its Hydra folder under `cwd`."""
    return subprocess.run(
        [sys.executable, "-m", module, *args, f"hydra.run.dir={cwd}/hydra-{module}"],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def start_train(*args: str, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    """`python -m quickdraw.train ARGS` started in a session of its own (so `finish` can kill it
    whole, workers and launcher jobs included), stdout and stderr together."""
    return subprocess.Popen(
        [sys.executable, "-m", "quickdraw.train", *args], cwd=cwd, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def finish(proc: subprocess.Popen, timeout: float = 400) -> tuple[int, str]:
    """Wait for `proc`; its exit code and output. Past `timeout` s its whole session is killed
    and the test fails with the output's tail."""
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"timed out after {timeout} s:\n{proc.communicate()[0][-3000:]}")
    return proc.returncode, output


def run_export(out: Path, *overrides: str) -> Path:
    """`python -m quickdraw.export out=OUT ...` in this process (the command, composed as Hydra would)."""
    from quickdraw.cli import export  # here: the other helpers need not load every command

    cfg = compose_config("export", [f"out={out}", *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = str(out / "run")
    export(cfg)
    return out


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
