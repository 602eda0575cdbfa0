"""Scoring a checkpoint (`evaluate.evaluate`), the Kaggle submission, and the report comparing runs."""

import lazy_loader

# Names are imported on first use, so importing one module of the package loads no other.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["evaluate"],
    submod_attrs={
        "report": ["write_report"],
        "submission": ["write_submission"],
    },
)
