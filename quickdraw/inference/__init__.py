"""Running a trained model over drawings: strokes in, class probabilities out (test-time augmentation included)."""

import lazy_loader

# Names are imported on first use, so importing one module of the package loads no other.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "runner": [
            "TTA_VIEWS",
            "batch_proba",
            "blank_proba",
            "check_tta",
            "model_inputs",
            "predict_proba",
            "raster_spec",
        ],
    },
)
