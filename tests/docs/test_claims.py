"""README and docs describe what keel has, not what is planned."""

from __future__ import annotations

import re
from pathlib import Path

from keel import ConfigurationError
from keel.config import settings_reference
from keel.container import KeelContainer

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BACKEND_VARIABLE = re.compile(r"KEEL_([A-Z_]+?)__BACKEND")


def builds(provider_name: str) -> bool:
    container = KeelContainer()
    try:
        getattr(container, provider_name)()
    except ConfigurationError:
        return False
    return True


def test_the_in_memory_bus_the_pages_promise_is_what_the_container_builds_by_default() -> None:
    """Pages speak of an in-memory bus: the container's default event bus is InMemoryEventBus."""
    from keel.event_bus import InMemoryEventBus

    claims = [
        page.name for page in PAGES if re.search(r"in-memory (event )?bus", page.read_text(encoding="utf-8"), re.I)
    ]
    assert claims
    assert isinstance(KeelContainer().event_bus(), InMemoryEventBus)


def test_every_backend_variable_named_is_a_setting_or_a_placeholders_error() -> None:
    """A `KEEL_<X>__BACKEND` in the docs is a real setting, or the variable a placeholder provider names."""
    settings = {reference.variable for reference in settings_reference()}
    for page in PAGES:
        for match in BACKEND_VARIABLE.finditer(page.read_text(encoding="utf-8")):
            variable, provider = match.group(0), match.group(1).lower()
            if variable in settings:
                continue
            assert hasattr(KeelContainer, provider), f"{page.name}: {variable} is neither a setting nor a provider"
            assert not builds(provider), f"{page.name}: {variable} is not a setting, yet {provider} builds"
