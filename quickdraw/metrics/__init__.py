"""Scoring predictions: top-1 and MAP@3 per class, scores over drawing prefixes, class hardness, balanced guesses."""

import lazy_loader

# Names are imported on first use, so importing one module of the package loads no other.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "balancing": ["balance", "load_prior"],
        "classification": ["MeanAveragePrecisionAtK", "Scores", "score"],
        "hardness": ["adaptive_quotas", "class_hardness", "class_weights"],
        "prefix": ["PrefixRecorder", "PrefixScores"],
    },
)
