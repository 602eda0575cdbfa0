"""How every command runs: Hydra's entry point around it, and its errors as one line.

A project error ([`QuickDrawError`][quickdraw.core.errors.QuickDrawError], what the library raises
for bad input, settings or files), a setting left unset, and running out of disk space anywhere,
is one line naming the file or setting and the fix, with exit code 2; an override Hydra cannot
parse (a path with `é` or brackets) gets the quoted form to type instead, exit code 2; any other
exception is a bug and keeps its traceback (so does every error with `HYDRA_FULL_ERROR=1`). In a
multirun (`-m`), a job's errors go to Hydra's sweeper unchanged, which records the job as failed;
the sweeper's own errors are reported as one line ([`sweep_reported`][quickdraw.core.commands.sweep_reported]).
`--help` shows the command's template (`hydra.help` in its config) without importing the library.
The commands themselves, and their configs, are in [`quickdraw.cli`][quickdraw.cli].
"""

from __future__ import annotations

import functools
import logging
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

from quickdraw.core.errors import QuickDrawError
from quickdraw.core.files import out_of_space, quiet_full_disk_echoes

log = logging.getLogger("quickdraw")


def absolute(path: str | None) -> str | None:
    """`path` (a setting's value) as an absolute path: from the directory the command started
    in, and a leading `~` expanded, as a shell would have done had the path not been quoted."""
    return path and hydra.utils.to_absolute_path(os.path.expanduser(path))


def user_message(error: Exception, output: Any = None) -> str | None:
    """The one line a user sees for `error`, or None for a bug (whose traceback must show).

    The project's errors ([`QuickDrawError`][quickdraw.core.errors.QuickDrawError], whose messages name the
    file or setting and the fix), a setting left unset, and running out of disk space anywhere
    (the library's writes say which file; a write elsewhere gets `output`, where the command
    writes). A project error raised while `hydra.utils.instantiate` builds an object (a model's
    setting) reaches here wrapped in Hydra's InstantiationException, and is reported as itself.
    """
    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    if isinstance(error, QuickDrawError):
        return _message(error)
    if out_of_space(error):
        where = getattr(error, "filename", None) or output or "the output"
        return (
            f"no space left on the disk while writing {where}: free some space there, or choose "
            "another folder for the output"
        )
    if isinstance(error, MissingMandatoryValue):
        return f"{error.full_key} is not set: give {error.full_key}=VALUE on the command line"
    return None


def _message(error: QuickDrawError) -> str:
    # An OSError built as (errno, message) prints "[Errno 28] message": the message alone.
    if isinstance(error, OSError) and error.strerror and type(error).__str__ is OSError.__str__:
        return error.strerror
    return str(error)


def _in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def command(
    config_name: str,
    writes: Callable[[DictConfig], Any],
    hint: Callable[[DictConfig], str] | None = None,
    renamed: dict[str, str] | None = None,
    *,
    config_path: str,
    prepare: Callable[[bool], None],
) -> Callable:
    """`hydra.main` for `<config_path>/<config_name>.yaml`, reporting errors as the module docstring says.

    `prepare(help_only)`: run before Hydra composes the config (the CLI stores its schemas;
    `help_only` when the command line asks for `--help` alone).
    `writes(cfg)`: where the command writes (named in a disk-full message that has no file);
    `hint(cfg)`: said after a disk-full message (train: the command that resumes the run);
    `renamed`: keys this config no longer has, to their new names (one line saying so, exit 2).
    `cmd.__wrapped__(cfg)` runs the command, with its error reporting, on a composed config.
    """

    def decorate(task: Callable[[DictConfig], Any]) -> Callable:
        @functools.wraps(task)
        def reported(cfg: DictConfig) -> Any:
            quiet_full_disk_echoes()  # the log file and background writers on a full disk
            try:
                return task(cfg)
            except Exception as error:
                message = user_message(error, _output(writes, cfg))
                if message is None or _in_multirun() or os.environ.get("HYDRA_FULL_ERROR") == "1":
                    raise
                if hint is not None and out_of_space(error):
                    message = f"{message.rstrip('.')}. {hint(cfg)}"
                log.error("%s", message)
                sys.exit(2)

        main = hydra.main(version_base="1.3", config_path=config_path, config_name=config_name)(
            reported
        )

        @functools.wraps(main)
        def entry(cfg_passthrough: DictConfig | None = None) -> Any:
            if cfg_passthrough is None:
                check_overrides(sys.argv[1:])
                check_renamed(sys.argv[1:], renamed or {})
            if _only_help(sys.argv[1:]):
                _list_groups_only_when_shown()
            prepare(_only_help(sys.argv[1:]))
            return main(cfg_passthrough)

        entry.__wrapped__ = reported
        return entry

    return decorate


def sweep_reported(sweep: Callable[[], Any]) -> Any:
    """`sweep()` of a sweeper (Hydra calls it outside the command's own error reporting), its
    errors reported as [`command`][quickdraw.core.commands.command] reports them: a user's error
    (a `hydra.sweeper.*` setting, a search that stopped on failed trials) is one line and exit
    code 2, a bug keeps its traceback."""
    try:
        return sweep()
    except Exception as error:
        message = user_message(error)
        if message is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        log.error("%s", message)
        sys.exit(2)


def _output(writes: Callable[[DictConfig], Any], cfg: DictConfig) -> str | None:
    try:
        return str(absolute(str(writes(cfg))))
    except Exception:  # an unset or unresolvable path: the message says "the output"
        return None


def _only_help(argv: Sequence[str]) -> bool:
    """Whether the command line asks for the help screen alone (no `--cfg`, which shows the config)."""
    return bool({"--help", "-h"} & set(argv)) and not {"--cfg", "-c"} & set(argv)


def _list_groups_only_when_shown() -> None:
    """Make Hydra list the config groups for `--help` only if the help template shows them.

    Hydra computes `$APP_CONFIG_GROUPS` and `$HYDRA_CONFIG_GROUPS` for every help screen,
    used or not (hydra-ecosystem/hydra#2907): two thirds of the seconds `--help` took, and the
    commands' templates show neither. `string.Template` calls `str()` on each value it puts in,
    so a value that computes itself then gives any template, a user's own included, the same text.
    """
    from hydra._internal.hydra import Hydra

    listing = Hydra.format_config_groups
    if getattr(listing, "lazy", False):
        return

    def lazy(self: Hydra, *args: Any, **kwargs: Any) -> Any:
        return _Deferred(lambda: listing(self, *args, **kwargs))

    lazy.lazy = True  # type: ignore[attr-defined]
    Hydra.format_config_groups = lazy  # type: ignore[method-assign]


class _Deferred:
    """A text computed when it is first turned into a string."""

    def __init__(self, make: Callable[[], str]) -> None:
        self.make = make

    def __str__(self) -> str:
        return self.make()


def check_overrides(argv: Sequence[str]) -> None:
    """Exit with code 2 and how to quote it when an override on the command line is one that
    Hydra's grammar refuses unquoted (letters outside ASCII, brackets, `=`, quotes, `~`...)."""
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    args, _ = get_args_parser().parse_known_args(list(argv))
    parser = OverridesParser.create()
    for override in args.overrides or []:
        try:
            parsed = parser.parse_overrides([override])[0]
        except OverrideParseException:
            print(f"error: {quoting_hint(override)}", file=sys.stderr)
            sys.exit(2)
        # without -m, commas (a path "a,b.csv") are a sweep Hydra then calls ambiguous, exit 1
        if parsed.is_sweep_override() and not args.multirun and "," in override:
            print(f"error: {quoting_hint(override)}", file=sys.stderr)
            sys.exit(2)


def check_renamed(argv: Sequence[str], renamed: dict[str, str]) -> None:
    """Exit with code 2 naming the new key when an override sets a key that was renamed
    (convert's `export.to=OUT` is now `npz.to=OUT`), instead of Hydra's "not in struct"."""
    for override in argv:
        key = override.partition("=")[0].lstrip("+~")
        old = key.partition(".")[0]
        if "=" in override and old in renamed:
            new = renamed[old] + key[len(old) :]
            print(f"error: {key} is now called {new}: give {new}={override.partition('=')[2]}",
                  file=sys.stderr)  # fmt: skip
            sys.exit(2)


def quoting_hint(override: str) -> str:
    """One line for an override Hydra cannot parse: what it reads unquoted, and the override
    quoted for Hydra (double quotes) inside quotes for the shell (single), ready to paste."""
    key, _, value = override.partition("=")
    if value.startswith("~"):  # inside quotes neither the shell nor Hydra expands it
        value = os.path.expanduser(value)
    if '"' not in value:
        quoted = f'"{value}"'
    elif "'" not in value:
        quoted = f"'{value}'"
    else:
        quoted = '"' + value.replace('"', '\\"') + '"'
    return (
        f"Hydra cannot read the override {override!r}: unquoted, a value may hold only ASCII "
        "letters, digits, spaces and _-+./\\:$%*@?| (no accents, brackets, =, quotes, ~; a comma "
        "makes a sweep). "
        f"Quote the value, keeping the quotes from the shell: {shlex.quote(f'{key}={quoted}')}"
    )


def reported(task: Callable[[], Any], output: Any = None) -> Any:
    """`task()` of an argparse command, its errors reported as [`command`][quickdraw.core.commands.command] reports them:
    one line on stderr and exit code 2 for a user's error, the traceback for a bug."""
    try:
        return task()
    except Exception as error:
        message = user_message(error, output)
        if message is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
