"""``python -m quickdraw.report``: see :func:`quickdraw.cli.report`."""

from quickdraw.cli import report

if __name__ == "__main__":
    report()
