"""The test suite, laid out as the package: `tests/<sub-package>/` holds the tests of
`quickdraw/<sub-package>/`; shared code is in `tests/helpers`, shared fixtures in `conftest.py`.

At the top level are the tests that cross every concern, as a user meets them through the commands:
each command's errors (`test_integrity_errors`), the reliability guarantees checked on the failing
inputs users sent (`test_real_world_inputs`), the notebooks, and the installed wheel.
"""
