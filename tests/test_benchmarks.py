"""The benchmarks cannot rot silently: each imports, answers `--help`, and names its own command."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys

import pytest

from tests.helpers.paths import ROOT

BENCHMARKS = sorted(
    ".".join(p.relative_to(ROOT).with_suffix("").parts)
    for p in (ROOT / "benchmarks").rglob("*.py")
    if p.stem not in ("__init__", "common", "plotting")
)


def test_every_area_is_listed():
    assert {"benchmarks.data", "benchmarks.demo", "benchmarks.figures.readme"} <= set(BENCHMARKS)
    assert len(BENCHMARKS) == 18


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_answers_help_and_names_its_command(name, monkeypatch, capsys):
    module = importlib.import_module(name)
    assert f"python -m {name}" in module.__doc__, f"{name}: the usage line names another command"
    monkeypatch.setattr(sys, "argv", [name, "--help"])
    with pytest.raises(SystemExit) as done:
        module.main()
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("usage:")


def test_a_benchmark_runs_as_a_module_from_the_checkout():
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.balance", "--sizes", "60x6", "--kinds", "weak"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert re.match(r"60 x 6 weak: balanced in [\d.]+ s; top-1 counts per class", out.stdout)


def test_nothing_reaches_around_the_package_through_sys_path():
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("quickdraw", "benchmarks", "tests")
        for path in (ROOT / folder).rglob("*.py")
        if re.search(r"sys\.path\.(insert|append)|from conftest import", path.read_text())
        and path != ROOT / "tests" / "test_benchmarks.py"
    ]
    assert not offenders
