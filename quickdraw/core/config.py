"""Structured configs: each default lives once, in the Python signature or dataclass that uses it.

The YAML files in `quickdraw/conf/` set only what differs from these (paths, interpolations, nested
`_target_` nodes) and document the options; Hydra merges them over schemas built here, so an
override of any argument (`data.per_class=20`, `settings.val_fraction=0.1`,
`limits.max_points=8000`) works without a YAML line repeating its default.

The schemas a command composes with are listed and registered by [`quickdraw.cli.register`][quickdraw.cli.register]
(the classes they come from live in the layers above this one).
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any


def signature_schema(target: type, with_target: bool = False) -> type:
    """A dataclass with one field per keyword argument of `target.__init__` and its default.

    Fields are typed `Any`: the target validates its own arguments (with messages that name them).
    Mutable defaults (dicts, lists) are copied per instance. `with_target` adds `_target_`
    naming `target`, for nodes that `hydra.utils.instantiate` builds.
    """
    fields = []
    if with_target:
        path = f"{target.__module__}.{target.__qualname__}"
        fields.append(("_target_", str, dataclasses.field(default=path)))
    for name, default in _defaults(target).items():
        if isinstance(default, dict | list):
            spec = dataclasses.field(default_factory=lambda d=default: type(d)(d))
        else:
            spec = dataclasses.field(default=default)
        fields.append((name, Any, spec))
    return dataclasses.make_dataclass(f"{target.__name__}Schema", fields)


def _defaults(target: type) -> dict[str, Any]:
    """Keyword arguments and their defaults (None where there is none): dataclass fields or `__init__`."""
    if dataclasses.is_dataclass(target):
        return {
            f.name: f.default_factory()
            if f.default_factory is not dataclasses.MISSING
            else (None if f.default is dataclasses.MISSING else f.default)
            for f in dataclasses.fields(target)
            if f.init
        }
    return {
        name: None if p.default is inspect.Parameter.empty else p.default
        for name, p in inspect.signature(target.__init__).parameters.items()
        if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
