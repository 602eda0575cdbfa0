"""`python -m quickdraw.download`: see [`quickdraw.cli.download`][quickdraw.cli.download]."""

from quickdraw.cli import download

if __name__ == "__main__":
    download()
