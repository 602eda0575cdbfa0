"""``python -m quickdraw.evaluate``: see :func:`quickdraw.cli.evaluate`."""

from quickdraw.cli import evaluate

if __name__ == "__main__":
    evaluate()
