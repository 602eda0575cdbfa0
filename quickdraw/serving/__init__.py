"""The live demo: a guesser turning drawings and photos into guesses, the guessing game's state, and the Gradio app."""

import lazy_loader

# Names are imported on first use, so importing one module of the package loads no other.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "app": ["build_app", "launch", "load_guesser"],
        "guesser": ["Guess", "Guesser", "Limits"],
        "guessing": ["GuessHistory"],
    },
)
