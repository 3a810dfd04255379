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


PROGRAM = re.compile(r"```python\n(.*?)```", re.S)


def _programs(page: Path) -> list[str]:
    """The page's Python blocks that are whole programs (they run something)."""
    return [b for b in PROGRAM.findall(page.read_text(encoding="utf-8")) if "asyncio.run(" in b]


def test_the_python_examples_of_the_readme_and_the_api_page_run_as_written() -> None:
    """The README's and docs/architecture.md's example programs, copied into a file
    and run as they are, exit 0 and print what they handled (a top-level `async with`
    would be a SyntaxError in a script)."""
    import subprocess
    import sys

    blocks = _programs(ROOT / "README.md") + _programs(ROOT / "docs" / "architecture.md")
    assert len(blocks) >= 3
    for block in blocks:
        run = subprocess.run(
            [sys.executable, "-c", block], capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 0, f"{block}\n{run.stderr[-2000:]}"
        assert run.stdout.strip(), block
