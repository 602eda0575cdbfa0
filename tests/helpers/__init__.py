"""Code the tests share, imported as `from tests.helpers.<module> import ...`: plain constants and
functions (fixtures live in the `conftest.py` files).

- `paths`: the checkout, the real sample and the failing-input cases.
- `drawings`: hand-made Kaggle rows and CSV files, raw ndjson, the generated sets' classes.
- `configs`: the command configs composed as the commands compose them, tiny-run settings.
- `checkpoints`: untrained and one-step checkpoints of this project.
- `commands`: running a command as a user does, a free loopback port.
- `notebooks`: running a project notebook with parameters.
"""
