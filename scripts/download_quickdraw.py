"""Download the Quick, Draw! data from a clone without installing it; see `--help`."""

import sys
from pathlib import Path

# Running a file puts scripts/ on sys.path, not the project root that holds the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quickdraw.data.download import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
