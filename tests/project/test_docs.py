"""The documentation stands on its own: it cites no outside brief, only paths that exist,
and docs/design.md covers every part of the contract."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# Spelled in two parts so that this file does not cite it either.
OUTSIDE_BRIEF = "DESIGN" + ".md"

DOCUMENTS = (
    "README.md",
    "bench/README.md",
    *sorted(str(path.relative_to(REPO_ROOT)) for path in (REPO_ROOT / "docs").glob("*.md")),
)

REQUIRED_DESIGN_SECTIONS = (
    "data model",
    "matching rules",
    "status mapping",
    "api",
    "report",
    "settings",
    "reliability",
    "architecture",
)

# `dir/file.ext` or `dir/` (one or more folders), nothing else inside the backticks.
CITED_PATH = re.compile(r"`((?:[\w.-]+/)+(?:[\w-]+\.[\w.]+)?)`")
# [text](target) where the target is a relative path, optionally with an #anchor.
LINKED_PATH = re.compile(r"\]\((?!https?:|mailto:|#)([^)#\s]+)(?:#[^)]*)?\)")
BINARY_SUFFIXES = frozenset({".png", ".jpg", ".gif", ".ico", ".whl", ".gz"})
# A doc page cited with a quoted title after it, in a comment or docstring (maybe wrapped).
CITED_SECTION = re.compile(r'docs/(\w+\.md)[,;]?\s*\(?"([^"]+)"')
# A heading, or the bold title a decision paragraph opens with.
SECTION_TITLE = re.compile(r"^(?:#+\s*(.+)|\*\*(.+?)\*\*)")


def tracked_texts() -> list[tuple[Path, str]]:
    """(path, text) of every tracked text file."""
    texts = []
    for path in tracked_files():
        if path.suffix in BINARY_SUFFIXES or not path.is_file():
            continue
        try:
            texts.append((path, path.read_text()))
        except UnicodeDecodeError:
            continue
    return texts


def section_titles(document: Path) -> list[str]:
    """Headings and bold paragraph titles of ``document``, lower case, one space apart."""
    titles = []
    for line in document.read_text().splitlines():
        match = SECTION_TITLE.match(line)
        if match:
            titles.append(" ".join((match.group(1) or match.group(2)).lower().split()))
    return titles


def tracked_files() -> list[Path]:
    """Every file git tracks in the checkout (and files added but not yet committed)."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [REPO_ROOT / name for name in listing.stdout.splitlines() if name]


def top_level_names() -> set[str]:
    """Names at the repository root that tracked files live under (`shared`, `.github`, …)."""
    return {path.relative_to(REPO_ROOT).parts[0] for path in tracked_files()}


def cited_paths(document: str) -> list[tuple[int, str]]:
    """(line number, path) of every repository path a document cites in backticks or links."""
    found = []
    text = (REPO_ROOT / document).read_text()
    for number, line in enumerate(text.splitlines(), start=1):
        for match in CITED_PATH.finditer(line):
            found.append((number, match.group(1)))
        for match in LINKED_PATH.finditer(line):
            target = (REPO_ROOT / document).parent / match.group(1)
            found.append((number, str(target.resolve().relative_to(REPO_ROOT.resolve()))))
    return found


def test_no_file_cites_the_outside_brief():
    citing = [
        f"{path.relative_to(REPO_ROOT)}:{number}"
        for path, text in tracked_texts()
        for number, line in enumerate(text.splitlines(), start=1)
        if OUTSIDE_BRIEF in line
    ]
    assert citing == []


def test_every_cited_section_of_the_docs_exists():
    # Code cites a decision or a part of the design by its title; renaming one must not
    # leave the citation pointing nowhere.
    titles = {path.name: section_titles(path) for path in (REPO_ROOT / "docs").glob("*.md")}
    dangling = []
    for path, text in tracked_texts():
        for match in CITED_SECTION.finditer(" ".join(text.split())):
            document, title = match.groups()
            wanted = title.lower()
            if not any(wanted in known for known in titles.get(document, [])):
                dangling.append(f"{path.relative_to(REPO_ROOT)}: {document}, {title!r}")
    assert dangling == []


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_cited_repository_path_exists(document):
    roots = top_level_names()
    missing = [
        f"{document}:{number}: {path}"
        for number, path in cited_paths(document)
        if path.split("/")[0] in roots and not (REPO_ROOT / path).exists()
    ]
    assert missing == []


def test_the_path_check_finds_paths():
    # Guards the check above against a pattern that matches nothing.
    assert cited_paths("README.md"), "README.md cites no path: the pattern is broken"
    assert CITED_PATH.findall("see `shared/nowhere.py` and `docs/` but not `text/csv`") == [
        "shared/nowhere.py",
        "docs/",
    ]


def test_the_design_has_every_section_of_the_contract():
    headings = [
        line.lstrip("#").strip().lower()
        for line in (REPO_ROOT / "docs" / "design.md").read_text().splitlines()
        if line.startswith("#")
    ]
    absent = [
        section
        for section in REQUIRED_DESIGN_SECTIONS
        if not any(re.search(rf"\b{section}\b", heading) for heading in headings)
    ]
    assert absent == []
