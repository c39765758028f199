"""The distribution is ``keel-framework`` everywhere: metadata, extras and every install instruction."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import keel

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXTRAS = ("postgres", "pubsub", "redis", "otel", "web", "docs")
PIP_INSTALL = re.compile(r"pip install\s+['\"]?([\w.-]+)(\[[\w,]+\])?")


def test_installed_distribution_is_keel_framework() -> None:
    """The installed distribution, whose version metadata readers ask for, is keel-framework."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["name"] == "keel-framework"
    assert metadata.version("keel-framework") == project["version"]
    assert metadata.metadata("keel-framework")["Name"] == "keel-framework"
    assert keel.__version__ == metadata.version("keel-framework")  # what `keel --version` prints


def test_self_referencing_extras_name_the_distribution() -> None:
    """The dev extra pulls the other extras through keel-framework, not the unrelated `keel`."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    assert set(EXTRAS) <= set(extras)
    assert any(re.fullmatch(r"keel-framework\[[\w,]*postgres[\w,]*\]", dep) for dep in extras["dev"])
    assert not [dep for deps in extras.values() for dep in deps if re.match(r"keel(\[|$|[<>=])", dep)]


def test_every_install_instruction_names_keel_framework() -> None:
    """No page tells a reader to `pip install keel`, which is someone else's project."""
    wrong = [
        f"{page.name}: {match.group(0)}"
        for page in PAGES
        for match in PIP_INSTALL.finditer(page.read_text(encoding="utf-8"))
        if match.group(1) == "keel"
    ]
    assert wrong == []


def test_readme_lists_every_extra_and_what_it_brings() -> None:
    """Each extra has a row in the README's install table."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert 'pip install "keel-framework[postgres]"' in readme
    for extra in EXTRAS:
        assert re.search(rf"^\| `{extra}` \| .+ \| .+ \|$", readme, re.MULTILINE), extra
