"""Benchmarks: scripts that print figures, one a measured area, never timed tests.

Run from the checkout as `python -m benchmarks.<area>` (`data`, `train`, `demo`, `export`,
`images`, `prefix`, `balance`, `compare_models`; the figures as
`python -m benchmarks.figures.<name>`), each with `--help`. What they share lives in
`benchmarks.common`.
"""
