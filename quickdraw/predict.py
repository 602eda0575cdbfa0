"""`python -m quickdraw.predict`: see [`quickdraw.cli.predict`][quickdraw.cli.predict]."""

from quickdraw.cli import predict

if __name__ == "__main__":
    predict()
