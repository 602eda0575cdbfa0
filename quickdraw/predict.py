"""``python -m quickdraw.predict``: see :func:`quickdraw.cli.predict`."""

from quickdraw.cli import predict

if __name__ == "__main__":
    predict()
