"""Every file README.md points to is in the repository: its links, and every path it names in
backticks under one of the repository's own folders (tests it cites as proof, modules it
describes). A rename that leaves README behind fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.infra

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
GENERATED = set((REPO / ".gitignore").read_text().split())
FOLDERS = ("tests/", "functions/", "infra/", "local/", "client/", "tools/", "docs/", "mk/", ".ci/")


def cited_paths() -> set[str]:
    links = {m for m in re.findall(r"\]\(([^)#\s]+)\)", README) if "://" not in m}
    named = set()
    for text in re.findall(r"`([^`\s]+)`", README):
        path = text.split("::", 1)[0].rstrip(".,:;")
        if path.startswith(FOLDERS) and "<" not in path and "…" not in path and "*" not in path:
            if path in GENERATED:
                continue  # written by a test run (git-ignored), absent from a clean clone
            named.add(path)
    return links | named


def test_readme_cites_files() -> None:
    assert len(cited_paths()) >= 10


@pytest.mark.parametrize("path", sorted(cited_paths()))
def test_every_path_readme_cites_exists(path: str) -> None:
    assert (REPO / path).exists(), f"README.md cites {path}, which is not in the repository"


def test_how_it_is_built_names_every_module() -> None:
    """README's layout names each module of the code folders (by file name or stem), so a new
    module is described where a newcomer looks for it."""
    layout = README.split("## How it is built", 1)[1].split("\n## ", 1)[0]
    unnamed = [
        str(path.relative_to(REPO))
        for folder in ("functions", "infra", "local", "client", "tools")
        for path in sorted((REPO / folder).rglob("*.py"))
        if path.name not in ("__init__.py", "__main__.py")
        and ".build" not in path.parts
        and path.stem not in layout
    ]
    assert unnamed == [], f"README's 'How it is built' does not name {unnamed}"
