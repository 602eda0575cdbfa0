"""Plain `nn.Module` networks, each built from a Hydra `_target_` with `num_classes` and `in_channels`."""

import lazy_loader

# Names are imported on first use, so importing one module of the package loads no other.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "ensemble": ["Ensemble"],
        "factory": ["build_net"],
        "lstm": ["StrokeRNN"],
        "resnet": ["ResNet18", "resnet18"],
        "timm_net": ["TimmNet", "timm_model"],
        "transformer": ["StrokeTransformer"],
    },
)
