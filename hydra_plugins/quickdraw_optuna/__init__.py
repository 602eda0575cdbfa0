"""quickdraw's Optuna sweeper as Hydra finds it: a plugin class in the `hydra_plugins` namespace.

Hydra instantiates a sweeper only from a class inside `hydra_plugins` (`hydra/core/plugins.py`),
and imports every module there whenever any command starts, so this one stays thin: the search
itself, and Optuna, load when a sweep begins ([`quickdraw.training.sweeper`][quickdraw.training.sweeper]).
Config: `quickdraw/conf/hydra/sweeper/optuna.yaml`, chosen by `hparams_search=optuna`.
"""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper


class OptunaSweeper(Sweeper):
    """Hydra's `Sweeper` over [`OptunaSearch`][quickdraw.training.sweeper.OptunaSearch]; takes the `hydra.sweeper.*` settings."""

    def __init__(self, **settings: Any) -> None:
        from quickdraw.training.sweeper import OptunaSearch

        self.search = OptunaSearch(**settings)

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        self.search.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        from quickdraw.core.commands import sweep_reported

        # A setting or failure rate refused: one line and exit code 2, as in every command
        return sweep_reported(lambda: self.search.sweep(arguments))
