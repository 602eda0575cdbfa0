"""`python -m quickdraw.convert`: see [`quickdraw.cli.convert`][quickdraw.cli.convert]."""

from quickdraw.cli import convert

if __name__ == "__main__":
    convert()
