"""Where the tests find the checkout, the real Quick, Draw! sample and the failing-input cases, and
which temporary files a writer left behind."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT.parent / "shared" / "data" / "quickdraw-sample"
CASES = SAMPLE.parents[1] / "cases"  # small failing inputs users met (../shared/cases/README.md)


def leftovers(folder: Path) -> list[Path]:
    """Temporary files any writer of the project could leave (`.<name>.<random>.tmp`)."""
    return sorted(p for p in folder.rglob("*") if p.name.endswith(".tmp"))
