"""Training one configuration (`train`), the settings check before it, callbacks, the checkpoint
writer, MLflow tracking, and the Optuna search (sweeper, study)."""

import lazy_loader

# Names are imported on first use, so importing one module of the package loads no other.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["callbacks"],
    submod_attrs={
        "fit": ["train"],
        "checkpoint_io": ["AtomicCheckpointIO"],
        "settings_check": ["IncompatibleSettings", "reconcile"],
        "sweeper": ["OptunaSearch", "SearchFailed"],
        "study": ["build_pruner", "build_sampler", "open_storage", "search_space"],
        "tracking": ["mlflow_logger"],
    },
)
