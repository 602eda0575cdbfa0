"""Tooling for the tests and benchmarks: a headless browser on the demo, pen-drawn photos, checkpoints made without training."""

import lazy_loader

# Names are imported on first use, so importing one module of the package loads no other.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "browser": ["PageSession", "draw", "open_page", "serve"],
        "checkpoints": ["save_module"],
        "pen_images": ["pen_drawing"],
    },
)
