"""``python -m quickdraw.convert``: see :func:`quickdraw.cli.convert`."""

from quickdraw.cli import convert

if __name__ == "__main__":
    convert()
