"""Lightning callbacks of this project: adaptive sampling, early guesses, NaN guard, raster schedule, seeds, EMA, Optuna pruning."""

import lazy_loader

# Names are imported on first use, so importing one module of the package loads no other.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "adaptive_sampler": ["AdaptiveSampler"],
        "early_guess": ["EarlyGuess"],
        "nan_guard": ["NaNGuard", "NonFiniteLossError"],
        "pruning": ["OptunaPruning"],
        "raster_schedule": ["RasterSchedule"],
        "rng_state": ["EpochSeed"],
        "weight_averaging": ["EMA"],
    },
)
