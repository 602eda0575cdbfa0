"""`python -m quickdraw.export`: see [`quickdraw.cli.export`][quickdraw.cli.export]."""

from quickdraw.cli import export

if __name__ == "__main__":
    export()
