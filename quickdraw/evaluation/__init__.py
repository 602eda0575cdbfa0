"""Scoring a checkpoint on labelled drawings (`evaluate`), the Kaggle submission, and the report comparing runs."""

import lazy_loader

# Names are imported on first use, so importing one module of the package loads no other.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "score": ["evaluate"],
        "results": ["Run", "SplitScores", "load_runs", "score_split"],
        "report": ["comparison_table", "write_report"],
        "submission": ["write_submission"],
    },
)
