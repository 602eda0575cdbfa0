"""One base for the project's errors: every exception class of the package derives from
QuickDrawError (found by reading every module, so a new class cannot slip past), and keeps the
built-in base its callers catch it by."""

from __future__ import annotations

import ast
import builtins
import functools

import pytest

from quickdraw.core.errors import InputError, MissingPathError, QuickDrawError, SettingError
from tests.helpers.paths import ROOT

PACKAGE = ROOT / "quickdraw"


@functools.cache
def exception_classes() -> dict[str, list[str]]:
    """Every exception class defined in the package: `module:Class` -> the names of its bases.

    Read from the source (no import: optional dependencies need not be installed). A class is an
    exception when a base is a built-in exception or another exception class of the package.
    """
    classes: dict[str, tuple[str, list[str]]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                bases = [
                    b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases
                ]
                classes[f"{module}:{node.name}"] = (node.name, bases)
    builtin = {n for n in dir(builtins) if isinstance(getattr(builtins, n), type) and issubclass(getattr(builtins, n), BaseException)}  # fmt: skip
    errors: set[str] = set(builtin)
    while True:  # to a fixed point: a class whose base is a project exception is one too
        more = {name for name, bases in classes.values() if set(bases) & errors} - errors
        if not more:
            break
        errors |= more
    return {key: bases for key, (name, bases) in classes.items() if name in errors - builtin}


def derives_from_base(name: str, classes: dict[str, list[str]]) -> bool:
    bases_of = {key.split(":")[1]: bases for key, bases in classes.items()}
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current == "QuickDrawError":
            return True
        if current not in seen:
            seen.add(current)
            todo += bases_of.get(current, [])
    return False


def test_the_walk_finds_the_project_errors():
    found = {key.split(":")[1] for key in exception_classes()}
    assert {"QuickDrawError", "StoreError", "CheckpointError", "ExportError", "BadRow"} <= found
    assert len(found) >= 20


@pytest.mark.parametrize("key", sorted(exception_classes()))
def test_every_exception_class_derives_from_quickdraw_error(key):
    assert derives_from_base(key.split(":")[1], exception_classes()), (
        f"{key} does not derive from quickdraw.core.errors.QuickDrawError: the commands would "
        "print its traceback instead of one line"
    )


def test_the_built_in_bases_callers_catch_are_kept():
    from quickdraw.core.files import DiskFullError
    from quickdraw.core.runs import RunFolderError
    from quickdraw.data.store import StoreError
    from quickdraw.deploy.web import WebBuildError

    assert issubclass(StoreError, RuntimeError) and issubclass(RunFolderError, ValueError)
    assert issubclass(WebBuildError, FileNotFoundError) and issubclass(DiskFullError, OSError)
    for kind, builtin in [(SettingError, ValueError), (InputError, ValueError),
                          (MissingPathError, FileNotFoundError)]:  # fmt: skip
        assert issubclass(kind, QuickDrawError) and issubclass(kind, builtin)
