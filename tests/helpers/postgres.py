"""A throw-away PostgreSQL server for tests: Debian's `postgresql` binaries, a data folder of its
own, listening on loopback only with its socket in that folder; stopped and deleted after.

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user (`runuser`).
Every reason it cannot start is raised as `Unavailable` with what to install or change.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class Unavailable(RuntimeError):
    """The server cannot start here; the message says why."""


def _binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found and shutil.which("initdb"):
        found = [shutil.which("initdb")]
    if not found:
        raise Unavailable(
            "PostgreSQL is not installed (apt-get install postgresql; `make test` does)"
        )
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def postgres_server(database: str = "optuna") -> Iterator[str]:
    """Start a server, create `database`, yield its URL (`postgresql://quickdraw@127.0.0.1:PORT/DB`)."""
    bin_dir = _binaries()
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="quickdraw-pg-"))  # /tmp: the postgres user can enter it
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError as error:
            raise Unavailable(
                "running as root and there is no postgres user to run the server"
            ) from error
        os.chown(folder, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", _free_port()

    def run(*cmd: str) -> None:
        done = subprocess.run([*as_user, *cmd], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = (folder / "server.log").read_text() if (folder / "server.log").exists() else ""
            raise Unavailable(
                f"{Path(cmd[0]).name} failed: {done.stderr.strip()[-500:]} {log[-500:]}"
            )

    try:
        run(
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "quickdraw",
            "--auth=trust",
            "-E",
            "UTF8",
        )
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off"
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "server.log"),
            "-w", "-t", "60", "start")  # fmt: skip
        try:
            run(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "quickdraw",
                database)  # fmt: skip
            yield f"postgresql://quickdraw@127.0.0.1:{port}/{database}"
        finally:
            subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                            "-w", "stop"], capture_output=True, timeout=60)  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)
