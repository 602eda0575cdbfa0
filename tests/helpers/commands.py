"""Running the commands as a user does (a child process) or as Hydra would call them (in process),
and a free loopback port for the servers they start."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

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
