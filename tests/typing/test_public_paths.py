"""One public import path per name: ``__all__`` only on public modules, each name in exactly one of them.

The rule is written down in docs/architecture.md ("Public paths"); this test
is what keeps it true.
"""

from __future__ import annotations

import ast
import importlib
from collections import defaultdict
from pathlib import Path

import keel

SRC = Path(keel.__file__).resolve().parent

#: The modules users import from (docs/architecture.md lists them with what each is for).
PUBLIC_MODULES = (
    "keel",
    "keel.cache",
    "keel.cli",
    "keel.config",
    "keel.container",
    "keel.domain.ports",
    "keel.event_bus",
    "keel.event_store",
    "keel.ext.fastapi",
    "keel.health",
    "keel.infrastructure.database",
    "keel.infrastructure.database.migrations",
    "keel.infrastructure.repository",
    "keel.orm",
    "keel.outbox",
    "keel.security",
    "keel.telemetry",
    "keel.testing",
    "keel.testing.fixtures",
)

#: Names deliberately public in two modules, each with its reason.
#: The event-bus port and its message types: code typed against the ports imports them from
#: ``keel.domain.ports``; code that publishes or subscribes finds them beside the buses.
DELIBERATE_REEXPORTS: dict[str, tuple[str, ...]] = dict.fromkeys(
    ("EventBus", "IncomingMessage", "MessageHandler", "OutgoingMessage", "Subscription"),
    ("keel.domain.ports", "keel.event_bus"),
)
# The port lives with the other ports (code is typed against keel.domain.ports), and
# DESIGN.md names keel.cache.Cache beside RedisCache and InMemoryCache, where users look.
DELIBERATE_REEXPORTS["Cache"] = ("keel.cache", "keel.domain.ports")


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def declares_all(path: Path) -> bool:
    """Whether the module assigns ``__all__`` at its top level (read from source, not imported)."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AnnAssign | ast.AugAssign)
            else []
        )
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            return True
    return False


def public_all(name: str) -> list[str]:
    exported = getattr(importlib.import_module(name), "__all__", None)
    assert exported is not None, f"public module {name} declares no __all__"
    return list(exported)


def test_every_public_module_declares_an_all_whose_names_resolve() -> None:
    """Each public module lists its names in ``__all__`` (ruff keeps it sorted), and every listed name resolves."""
    for name in PUBLIC_MODULES:
        module = importlib.import_module(name)
        exported = public_all(name)
        missing = [n for n in exported if not hasattr(module, n)]
        assert not missing, f"{name}.__all__ lists {missing}, which it does not have"


def test_no_private_module_declares_all() -> None:
    """Implementation modules do not advertise names: only the public modules have an ``__all__``."""
    private_with_all = sorted(
        module_name(path)
        for path in SRC.rglob("*.py")
        if module_name(path) not in PUBLIC_MODULES and declares_all(path)
    )
    assert not private_with_all, (
        f"private modules with __all__ (drop it, or make the module public): {private_with_all}"
    )


def test_every_public_name_has_exactly_one_public_module() -> None:
    """A name is exported by one public module only, unless it is a documented deliberate re-export."""
    homes: dict[str, list[str]] = defaultdict(list)
    for name in PUBLIC_MODULES:
        for exported in public_all(name):
            homes[exported].append(name)
    doubled = {n: m for n, m in homes.items() if len(m) > 1 and tuple(m) != DELIBERATE_REEXPORTS.get(n)}
    assert not doubled, f"names with more than one public path: {doubled}"
    stale = {n for n in DELIBERATE_REEXPORTS if tuple(homes.get(n, ())) != DELIBERATE_REEXPORTS[n]}
    assert not stale, f"DELIBERATE_REEXPORTS entries that no longer match: {stale}"


def test_the_public_paths_of_the_docs_are_the_ones_this_test_checks() -> None:
    """docs/architecture.md's "Public paths" list and PUBLIC_MODULES name the same modules."""
    text = (SRC.parents[1] / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Public paths", 1)[1].split("\n## ", 1)[0]
    listed = {line.split("`")[1] for line in section.splitlines() if line.startswith("| `keel")}
    assert listed == set(PUBLIC_MODULES)
