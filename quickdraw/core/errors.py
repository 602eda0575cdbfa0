"""The project's errors: one base, [`QuickDrawError`][quickdraw.core.errors.QuickDrawError], for every problem a user can fix.

Every exception class of the package derives from it, so a command reports them all the same way
([`quickdraw.cli`][quickdraw.cli]): its message, one line naming the file or setting and the fix, and exit
code 2. Anything else that escapes a command is a bug and keeps its traceback. A class keeps a
built-in second base where callers catch it by that (`except ValueError` around a reader,
`except OSError` around a write), so adding the base changed no `except` clause.

The general kinds below are for library code that has no more specific class of its own: raise
`SettingError` rather than a bare `ValueError` for a setting that cannot work, so that the
command turns it into one line instead of a traceback.
"""

from __future__ import annotations


class QuickDrawError(Exception):
    """A problem with the user's input, settings, files or disk: the message says what to do."""


class SettingError(QuickDrawError, ValueError):
    """A setting (a config key, an argument) that cannot work: the message names it and a value that does."""


class InputError(QuickDrawError, ValueError):
    """An input file or drawing that cannot be used as given: the message names it and why."""


class MissingPathError(QuickDrawError, FileNotFoundError):
    """A file or folder a setting names does not exist: the message names the setting."""
