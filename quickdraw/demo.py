"""``python -m quickdraw.demo``: see :func:`quickdraw.cli.demo`."""

from quickdraw.cli import demo

if __name__ == "__main__":
    demo()
