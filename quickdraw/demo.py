"""`python -m quickdraw.demo`: see [`quickdraw.cli.demo`][quickdraw.cli.demo]."""

from quickdraw.cli import demo

if __name__ == "__main__":
    demo()
