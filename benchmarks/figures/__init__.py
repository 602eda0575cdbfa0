"""The README's and the docs' figures and screenshots, each from a command run beside it:
`python -m benchmarks.figures.<name>` (shared helpers in `benchmarks.figures.plotting`)."""
