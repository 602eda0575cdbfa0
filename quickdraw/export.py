"""``python -m quickdraw.export``: see :func:`quickdraw.cli.export`."""

from quickdraw.cli import export

if __name__ == "__main__":
    export()
