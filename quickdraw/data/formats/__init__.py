"""Quick, Draw! file layouts: the base every reader builds on, Google's binary files, sketch-rnn's `.npz`.

The text layouts (Kaggle CSV, Google ndjson) are read by [`quickdraw.data.readers`][quickdraw.data.readers], which
builds on [`base`][quickdraw.data.formats.base] like the binary readers here. Those decode and
range-check whole drawings themselves (numpy over buffers, not JSON), so they hand the converter a
[`ParsedDrawing`][quickdraw.data.formats.base.ParsedDrawing] that `parsing.parse_drawing` passes through.
Names are imported on first use (`lazy_loader`), so importing one reader loads no other.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["base", "binary", "safe_npz", "sketchrnn", "sketchrnn_writer"],
    submod_attrs={
        "base": [
            "BadRow",
            "InputFile",
            "ParsedDrawing",
            "QuickDrawFormatError",
            "Record",
            "open_bytes",
        ],
        "safe_npz": ["UnsafeFileError", "load_npz"],
        "sketchrnn_writer": ["write_npz"],
    },
)
