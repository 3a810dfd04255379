"""The documentation cannot drift: generated tables match the code, links resolve."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _generator() -> ModuleType:
    path = ROOT / "docs" / "gen_reference.py"
    spec = importlib.util.spec_from_file_location("gen_reference", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_page_matches_the_code() -> None:
    """docs/reference.md is what docs/gen_reference.py renders from the code now."""
    gen = _generator()
    assert (ROOT / "docs" / "reference.md").read_text(encoding="utf-8") == gen.render(), (
        "docs/reference.md is stale: run python docs/gen_reference.py"
    )


def test_every_relative_link_in_the_docs_resolves() -> None:
    """Each relative link in README.md, CHANGELOG.md and docs/*.md names a file that exists."""
    pages = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / unquote(target)).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, broken
