"""`python -m quickdraw.train`: see [`quickdraw.cli.train`][quickdraw.cli.train]."""

from quickdraw.cli import train

if __name__ == "__main__":
    train()
