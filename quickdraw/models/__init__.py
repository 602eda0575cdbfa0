"""Networks (`components`), losses and objectives, the LightningModule that trains them, and loading one from its checkpoint."""

import lazy_loader

# Names are imported on first use, so importing one module of the package loads no other.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["components"],
    submod_attrs={
        "hub": ["ModelFolderError", "read_model_folder"],
        "loading": ["load_model"],
        "losses": ["ClassWeightedCrossEntropy", "CrossEntropy"],
        "module": ["QuickDrawModule"],
        "objectives": ["EnsembleMembers", "Plain"],
    },
)
