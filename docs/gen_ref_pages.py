"""Writes the API reference at build time (mkdocs-gen-files): one page per module of quickdraw.

Pages are made from whatever modules exist when the site is built, so a module that is added,
renamed or moved needs no edit here or in mkdocs.yml. Each sub-package's page (the section index)
lists its modules and the public names its ``__init__`` declares in ``__all__``, each linked to
the one page that documents it; the objects themselves are rendered only on their module's page,
so every cross-reference has exactly one target. The command entry modules beside ``cli.py``
are two-line shims documented by ``quickdraw.cli`` and get no page.
"""

from __future__ import annotations

from pathlib import Path

import griffe
import mkdocs_gen_files

PACKAGE = "quickdraw"
ROOT = Path(__file__).resolve().parent.parent


def documented(path: Path) -> bool:
    """Whether the module file at ``path`` (relative to ROOT) gets a reference page: modules of
    packages (not files in data folders), none private; at the top level only ``cli.py``, since
    beside it the top level holds only the commands' two-line entry modules."""
    parts = path.with_suffix("").parts
    if not all((ROOT / Path(*parts[:i]) / "__init__.py").is_file() for i in range(1, len(parts))):
        return False
    if any(part.startswith("_") and part != "__init__" for part in parts):
        return False
    return len(parts) != 2 or parts[1] in {"__init__", "cli"}


def summary_line(obj: griffe.Object | griffe.Alias) -> str:
    """The first paragraph of an object's docstring on one line, for a sub-package's tables."""
    try:
        docstring = obj.docstring
    except griffe.AliasResolutionError:
        return ""
    if docstring is None:
        return ""
    return " ".join(docstring.value.strip().split("\n\n")[0].split()).replace("|", "\\|")


def public_name(package: griffe.Module, name: str) -> str:
    """A name from ``__all__`` as a link to where it is documented, or as code where it is not
    (mkdocstrings leaves out objects without docstrings, and a link to nothing fails the build)."""
    try:
        target = package[name].final_target if package[name].is_alias else package[name]
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return f"`{name}`"
    rendered = target.path.startswith(PACKAGE + ".") and (target.is_module or target.has_docstrings)
    return f"[`{name}`][{target.path}]" if rendered else f"`{name}`"


def package_index(package: griffe.Module) -> str:
    """A sub-package's page: its docstring, then its modules and its public names as links."""
    options = "    options:\n      members: false\n      show_root_heading: false\n"
    lines = [f"# `{package.path}`", "", f"::: {package.path}", options]
    modules = sorted(
        name
        for name, module in package.modules.items()
        if documented(Path(module.filepath).relative_to(ROOT))
    )
    if modules:
        lines += ["## Modules", "", "| Module | What it is for |", "| --- | --- |"]
        for name in modules:
            module = package.modules[name]
            lines.append(f"| [`{name}`][{module.path}] | {summary_line(module)} |")
        lines.append("")
    exports = [name for name in package.exports or () if isinstance(name, str)]
    if exports:
        lines += ["## Public names", "", "| Name | What it is |", "| --- | --- |"]
        for name in exports:
            lines.append(f"| {public_name(package, name)} | {summary_line(package[name])} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    """Write ``reference/<module path>.md`` for every documented module, and the section's nav:
    the package's own page first, then its modules and sub-packages, each sub-package a section
    whose index is its page (a flat list with no extra "quickdraw" level)."""
    loaded = griffe.load(PACKAGE, search_paths=[str(ROOT)], resolve_aliases=True)
    nav = []
    for source in sorted((ROOT / PACKAGE).rglob("*.py")):
        path = source.relative_to(ROOT)
        if not documented(path):
            continue
        parts = path.with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
            doc_path = Path(*parts, "index.md")
            text = package_index(loaded[".".join(parts[1:])] if len(parts) > 1 else loaded)
        else:
            doc_path = Path(*parts).with_suffix(".md")
            name = ".".join(parts)
            text = f"# `{name}`\n\n::: {name}\n    options:\n      show_root_heading: false\n"
        depth = max(len(parts) - 2, 0)  # quickdraw/index.md and the top-level modules at 0
        nav.append(f"{'    ' * depth}* [{parts[-1]}]({doc_path.as_posix()})\n")
        with mkdocs_gen_files.open(Path("reference", doc_path), "w") as page:
            page.write(text)
    with mkdocs_gen_files.open("reference/SUMMARY.md", "w") as summary:
        summary.writelines(nav)


main()
