"""Any image model of timm (PyTorch Image Models) as the network: one `name`, built for the raster.

timm (Wightman, https://huggingface.co/docs/timm) builds hundreds of architectures through one
`timm.create_model(name, num_classes=..., in_chans=...)`: it sizes the classifier, and with
`pretrained=True` it adapts the first convolution's ImageNet filters to `in_chans` (summed for one
channel, as [`adapt_input_conv`][quickdraw.models.components.resnet.adapt_input_conv] does for the
ResNet18). Models whose pretrained config says `fixed_input_size` (ViTs, whose position embedding
has one entry per patch) are built for the raster's size (`img_size`); the others take any size.

The wrapper keeps timm's own module under `model.`, so its state-dict keys are timm's with that
prefix, and adds the `forward_features` every network of this project offers.
"""

from __future__ import annotations

import difflib
import os
from typing import Any

from torch import Tensor, nn

from quickdraw.core.errors import SettingError


class TimmNet(nn.Module):
    """A timm model: `forward(images (B, C, H, W) float in [0, 1])` -> `(B, num_classes)` logits."""

    def __init__(self, model: nn.Module, name: str) -> None:
        super().__init__()
        self.model = model
        self.name = name
        # The pooled width that reaches the classifier: timm's `head_hidden_size` where a head
        # widens the trunk's features (MobileNetV3's 1x1 conv_head: 576 -> 1024), else `num_features`.
        self.num_features = int(getattr(model, "head_hidden_size", None) or model.num_features)

    def forward_features(self, x: Tensor) -> Tensor:
        """(B, num_features) pooled features: timm's head up to, not including, its classifier."""
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


def timm_model(
    name: str,
    num_classes: int,
    in_channels: int = 1,
    pretrained: bool = False,
    img_size: int | None = None,
    drop_rate: float = 0.0,
    **kwargs: Any,
) -> TimmNet:
    """`timm.create_model(name)` for `num_classes` classes on `in_channels`-channel images.

    name: a timm model name (`timm.list_models()`), e.g. `mobilenetv3_small_100`,
      `efficientnet_b0`, `mobilevit_xxs`, `convnext_atto`, `vit_tiny_patch16_224`.
    img_size: the raster's side in px; passed to models with a fixed input size (ViTs: 64 px
      with 16 px patches gives 4 x 4 tokens), ignored by the others, which take any size.
    pretrained: ImageNet weights from the Hugging Face hub cache (`HF_HOME`); without them and
      without a network, a RuntimeError says how to put them there.
    drop_rate: dropout before the classifier. Further keyword arguments go to the model
      (`drop_path_rate`, `patch_size`, ...).
    Raises SettingError for a name timm does not know (with the closest names it does).
    """
    import timm

    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
        raise SettingError(
            f"model.net.name={name!r} is not a timm model (timm {timm.__version__}); "
            + (
                f"closest: {', '.join(close)}"
                if close
                else "list them with timm.list_models('*pattern*')"
            )
        )
    if in_channels < 1 or num_classes < 1:
        raise SettingError(
            f"need in_channels >= 1 and num_classes >= 1, got {in_channels}, {num_classes}"
        )
    if _fixed_input_size(name):
        if img_size is None:
            raise SettingError(
                f"timm's {name} is built for one input size: set model.net.img_size to the raster's "
                "side (conf/model/timm.yaml sets ${data.raster.size})"
            )
        kwargs["img_size"] = img_size
    options = dict(num_classes=num_classes, in_chans=in_channels, drop_rate=drop_rate, **kwargs)
    if not pretrained:
        return TimmNet(timm.create_model(name, pretrained=False, **options), name)
    try:
        return TimmNet(timm.create_model(name, pretrained=True, **options), name)
    except (OSError, RuntimeError, ValueError) as err:  # hub errors are OSErrors (HTTP, no file)
        raise RuntimeError(_offline_message(name, err)) from err


def _fixed_input_size(name: str) -> bool:
    """Whether timm's pretrained config for `name` says the model takes one input size only."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    return bool(cfg is not None and cfg.fixed_input_size)


def _offline_message(name: str, err: Exception) -> str:
    hub = os.environ.get("HF_HOME") or os.path.expanduser("~/.cache/huggingface")
    return (
        f"ImageNet weights for timm's {name} are not in the Hugging Face cache and could not be "
        f"downloaded ({str(err).splitlines()[0][:200]}).\nCache: {hub}/hub\nOn a machine with "
        f"internet, run `python -c \"import timm; timm.create_model('{name}', pretrained=True)\"` "
        f"and copy its {hub}/hub folder to exactly that path on this one (or set HF_HOME to a copy; "
        "HF_HUB_OFFLINE=1 then reads it without the network).\npretrained=false, the default and "
        "the usual choice for Quick, Draw! (doodles are far from ImageNet photos), needs no file."
    )
