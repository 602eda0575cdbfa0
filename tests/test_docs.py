"""The manual against the tree: the README's layout table, the strict docs build, links to files."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "quickdraw"
ENTRY_MODULES = {"train", "evaluate", "predict", "demo", "export", "convert", "download", "report"}
# `quickdraw/core/` or `benchmarks/data.py` written in backticks: a path the reader is told exists
BACKTICKED_PATH = re.compile(r"`([\w.-]+(?:/[\w.-]+)*/?)`")
# [text](target) and ![alt](target), and reference definitions `[id]: target`
MARKDOWN_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
LINK_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)


def layout_section() -> str:
    """The README's "## Layout" section, up to the next second-level heading."""
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^## Layout\s*$(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, "README.md has no '## Layout' section"
    return match.group(1)


def layout_paths() -> set[str]:
    """Every repository path the Layout section names (the ones with a slash)."""
    return {path for path in BACKTICKED_PATH.findall(layout_section()) if "/" in path}


def test_layout_lists_every_folder_of_the_package() -> None:
    listed = layout_paths()
    folders = {
        f"quickdraw/{entry.name}/"
        for entry in PACKAGE.iterdir()
        if entry.is_dir() and entry.name != "__pycache__" and not entry.name.startswith(".")
    }
    assert folders, "found no folder in quickdraw/"
    assert sorted(folders - listed) == [], "folders of quickdraw/ missing from README's Layout"


def test_layout_names_only_what_exists() -> None:
    listed = layout_paths()
    assert listed, "README's Layout names no path in backticks"
    missing = sorted(
        path
        for path in listed
        if not ((ROOT / path).is_dir() if path.endswith("/") else (ROOT / path).exists())
    )
    assert missing == [], "README's Layout names paths that do not exist"


def test_package_top_level_holds_only_the_command_modules() -> None:
    modules = {path.stem for path in PACKAGE.glob("*.py")}
    assert modules == {"__init__", "cli", *ENTRY_MODULES}


def markdown_files() -> list[Path]:
    """The pages of the docs site, and the Markdown files of the repository outside it."""
    skip = {".venv", "outputs", "site", "build", "dist", "data", ".git", "node_modules"}
    return sorted(
        path
        for path in ROOT.rglob("*.md")
        if not skip.intersection(path.relative_to(ROOT).parts[:1]) and ".egg-info" not in str(path)
    )


def relative_targets(page: Path) -> list[str]:
    """The targets of the page's links that point into the repository (no URL, no bare anchor)."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    targets = MARKDOWN_LINK.findall(text) + LINK_DEFINITION.findall(text)
    return [t for t in targets if not re.match(r"^([a-z][a-z0-9+.-]*:|#|/)", t, re.IGNORECASE)]


def test_markdown_links_point_to_files_that_exist() -> None:
    """Links from the README (and any Markdown file) to repository files; mkdocs checks only
    links between the site's pages, and the API reference pages exist only in the build."""
    pages = markdown_files()
    assert ROOT / "README.md" in pages
    generated = ROOT / "docs" / "reference"
    broken = []
    for page in pages:
        for target in relative_targets(page):
            path = (page.parent / target.split("#")[0].split("?")[0]).resolve()
            if path.is_relative_to(generated) or path.exists():
                continue
            broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None,
    reason="mkdocs is not installed (pip install -e '.[docs]')",
)
def test_docs_build_strict(tmp_path: Path) -> None:
    """`mkdocs build --strict`: broken links, anchors and cross-references fail, as in CI."""
    env = {**os.environ, "DISABLE_MKDOCS_2_WARNING": "true", "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet"]
        + ["--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    reference = tmp_path / "site" / "reference"
    expected = {
        Path(*path.relative_to(ROOT).with_suffix("").parts)
        for path in PACKAGE.rglob("*.py")
        if not (path.parent == PACKAGE and path.stem in ENTRY_MODULES)
        and not any(part.startswith("_") and part != "__init__" for part in path.parts)
    }
    pages = {page.parent.relative_to(reference) for page in reference.rglob("index.html")}
    # a package's page is its folder's index.html, a module's page reference/<module path>/index.html
    expected = {path.parent if path.name == "__init__" else path for path in expected}
    assert sorted(map(str, expected - pages)) == [], "modules without a reference page"


SPHINX_ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|attr|data|exc|obj|const):`")


def test_docstrings_use_markdown_cross_references() -> None:
    """The reference renders docstrings as Markdown, where a Sphinx role shows as raw text:
    references are written `[text][quickdraw.dotted.path]` (checked by the strict build)."""
    roles = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if SPHINX_ROLE.search(line)
    ]
    assert roles == []


REPO_PATH = re.compile(
    r"\b((?:quickdraw|tests|benchmarks|docs|notebooks)/[\w./-]+\.(?:py|md|ipynb|yaml))\b"
)
README_SECTION = re.compile(r"README[,:] ")


def _code_files() -> list[Path]:
    suffixes = {".py", ".yaml", ".js", ".html", ".css"}
    return [
        path
        for folder in ("quickdraw", "benchmarks", "tests")
        for path in sorted((ROOT / folder).rglob("*"))
        if path.suffix in suffixes and "__pycache__" not in path.parts
    ]


def test_paths_named_in_code_and_configs_exist() -> None:
    """A docstring, comment or config that sends the reader to a file of the repository (a test
    that holds a claim, the docs page with the measurement) names a file that exists: the layout
    moved once and must not leave pointers to where things used to be."""
    missing = [
        f"{path.relative_to(ROOT)}:{number}: {match}"
        for path in _code_files()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        for match in REPO_PATH.findall(line)
        if not (ROOT / match).exists() and not match.startswith("docs/reference/")
    ]
    assert missing == []


def test_code_points_to_the_docs_not_to_readme_sections() -> None:
    """Measurements and recipes live in the docs site; the README is the short front page, so a
    pointer like "README, Results" has nowhere to lead."""
    pointers = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in _code_files()
        if path.name != "test_docs.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if README_SECTION.search(line)
    ]
    assert pointers == []
