"""`python -m quickdraw.evaluate`: see [`quickdraw.cli.evaluate`][quickdraw.cli.evaluate]."""

from quickdraw.cli import evaluate

if __name__ == "__main__":
    evaluate()
