"""The README starts a learner; the reference lives in docs/, and every link between them holds.

Fast and offline: it reads README.md, docs/*.md and lib/settings.py's Settings class.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lib.settings import PROJECT_ROOT, Settings

README = PROJECT_ROOT / "README.md"
DOCS = PROJECT_ROOT / "docs"
MAX_README_LINES = 300
# What a learner changes most often, beyond the settings fields: the Makefile's API address,
# pyspark's own Spark Connect variable and the local server's port.
REQUIRED_VARIABLES = {
    "API_HOST",
    "API_PORT",
    "SPARK_REMOTE",
    "SPARK_CONNECT_PORT",
    "CONFIG_API_URL",
}

FENCE = re.compile(r"^(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"`+[^`]*`+")
# [text](target) and ![alt](target); the target ends at whitespace (an optional title) or ")".
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def doc_pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def prose_lines(path: Path) -> list[str]:
    """The file's lines outside fenced code blocks (a `# comment` in bash is no heading)."""
    lines, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation but `-` and `_` dropped, spaces
    to `-` (markup such as backticks and link brackets is punctuation too)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def headings(path: Path) -> list[str]:
    return [m.group(2) for line in prose_lines(path) if (m := HEADING.match(line))]


def anchors(path: Path) -> set[str]:
    """Every heading's anchor, with GitHub's -1, -2 ... for repeated headings."""
    seen: dict[str, int] = {}
    found = set()
    for heading in headings(path):
        base = slug(heading)
        count = seen.get(base, 0)
        found.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    return found


def links(path: Path) -> list[str]:
    targets = []
    for line in prose_lines(path):
        targets += LINK.findall(CODE_SPAN.sub("", line))
    return targets


def is_external(target: str) -> bool:
    return re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) is not None


def section(path: Path, title: str) -> list[str]:
    """The lines under the `## title` heading, up to the next heading of that level."""
    lines = prose_lines(path)
    start = next(i for i, line in enumerate(lines) if line.strip() == f"## {title}")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), None)
    return lines[start + 1 : end]


def settings_variables() -> set[str]:
    """The environment variable behind each Settings field (pydantic-settings: the name,
    upper-cased, after the class's env_prefix)."""
    prefix = Settings.model_config.get("env_prefix") or ""
    return {f"{prefix}{name}".upper() for name in Settings.model_fields}


def test_slug_follows_githubs_rules() -> None:
    assert slug("Quick start: the two commands") == "quick-start-the-two-commands"
    assert slug("Setup: `python -m bench.setup`") == "setup-python--m-benchsetup"
    assert slug("NaN, infinity and -0.0") == "nan-infinity-and--00"
    assert slug("The learner's run: `python -m bench.teaching_run`") == (
        "the-learners-run-python--m-benchteaching_run"
    )


def test_readme_is_short_enough_to_start_a_learner() -> None:
    count = len(README.read_text(encoding="utf-8").splitlines())
    assert count <= MAX_README_LINES, f"README.md has {count} lines (at most {MAX_README_LINES})"


def test_readme_table_of_contents_links_every_section_to_its_heading() -> None:
    contents = section(README, "Contents")
    targets = [t for line in contents for t in LINK.findall(line)]
    assert targets, "README.md has no table of contents (a `## Contents` list of links)"
    readme_anchors = anchors(README)
    broken = [t for t in targets if not t.startswith("#") or t[1:] not in readme_anchors]
    assert not broken, f"table of contents links without a heading: {broken}"
    sections = {
        slug(m.group(2))
        for line in prose_lines(README)
        if (m := HEADING.match(line)) and len(m.group(1)) == 2
    } - {"contents"}
    missing = sections - {t[1:] for t in targets}
    assert not missing, f"sections missing from the table of contents: {sorted(missing)}"


@pytest.mark.parametrize("page", [README, *doc_pages()], ids=lambda p: p.name)
def test_relative_links_point_at_existing_files_and_headings(page: Path) -> None:
    broken = []
    for target in links(page):
        if is_external(target):
            continue
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no such heading in {linked.name}")
    assert not broken, f"{page.relative_to(PROJECT_ROOT)}: {broken}"


def test_every_docs_page_is_linked_from_the_readme() -> None:
    assert doc_pages(), "docs/ holds no pages"
    linked = {
        (README.parent / t.partition("#")[0]).resolve()
        for t in links(README)
        if not is_external(t) and t.partition("#")[0]
    }
    unlinked = [p.name for p in doc_pages() if p.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not link: {unlinked}"


def test_every_docs_page_leads_back_to_the_readme() -> None:
    for page in doc_pages():
        first = next(line for line in page.read_text(encoding="utf-8").splitlines() if line)
        assert "(../README.md)" in first, f"{page.name} does not start with a link to the README"


def test_readme_configuration_table_lists_every_variable() -> None:
    rows = [line for line in section(README, "Configuration") if line.startswith("|")]
    first_cells = [row.split("|")[1] for row in rows]
    listed = {name for cell in first_cells for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", cell)}
    expected = settings_variables() | REQUIRED_VARIABLES
    assert "DATABASE_URL" in expected and "SPARK_DRIVER_MEMORY" in expected  # derived, not empty
    missing = expected - listed
    assert not missing, f"missing from the README's configuration table: {sorted(missing)}"
