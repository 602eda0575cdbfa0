"""Which named input each network reads ([`quickdraw.data.inputs`][quickdraw.data.inputs]), and building a net for it.

A net config may name its input (`input: temporal`; default `image`, the input of `data.raster`):
[`build_net`][quickdraw.models.components.factory.build_net] takes that key out, builds the net for that input's channels and tags the net
with `input_name` (a plain attribute: state-dict keys do not change). Nets that route inputs to
members themselves (`routes_inputs = True`, the [`Ensemble`][quickdraw.models.components.ensemble.Ensemble])
get every input's channels instead and read every input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import hydra
from torch import nn

from quickdraw.core.errors import SettingError
from quickdraw.data.inputs import IMAGE


def build_net(
    config: Mapping[str, Any], num_classes: int, channels: Mapping[str, int]
) -> nn.Module:
    """Instantiate `config` for `num_classes` classes; `channels`: input name -> channels."""
    config = dict(config)
    name = config.pop("input", None) or IMAGE
    target = hydra.utils.get_object(config["_target_"])
    if getattr(target, "routes_inputs", False):
        return hydra.utils.instantiate(
            config, num_classes=num_classes, in_channels=dict(channels), _recursive_=False
        )
    if name not in channels:
        raise SettingError(
            f"the net {config['_target_']} reads input {name!r}, which the data does not offer "
            f"(inputs: {', '.join(sorted(channels))}); add it under data.inputs.{name}"
        )
    net = hydra.utils.instantiate(config, num_classes=num_classes, in_channels=channels[name])
    net.input_name = name
    return net


def net_input(net: nn.Module, inputs: Mapping[str, Any]) -> Any:
    """What `net` reads out of the named inputs: its own one, or all of them when it routes them."""
    name = getattr(net, "input_name", None)
    return inputs if name is None else inputs[name]


def input_names(net: nn.Module) -> list[str]:
    """Every input `net` and its sub-networks read, in first-use order."""
    names = [getattr(m, "input_name", None) for m in net.modules()]
    return list(dict.fromkeys(n for n in names if n is not None))
