"""`python -m quickdraw.report`: see [`quickdraw.cli.report`][quickdraw.cli.report]."""

from quickdraw.cli import report

if __name__ == "__main__":
    report()
