"""Training one configuration (`train`), the settings check before it, callbacks and the checkpoint writer."""

import lazy_loader

# Names are imported on first use, so importing one module of the package loads no other.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["callbacks"],
    submod_attrs={
        "fit": ["train"],
        "checkpoint_io": ["AtomicCheckpointIO"],
        "settings_check": ["IncompatibleSettings", "reconcile"],
    },
)
