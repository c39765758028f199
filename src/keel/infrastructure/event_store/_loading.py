"""Find the application's projections from ``KEEL_EVENT_STORE__PROJECTIONS`` (``module:attribute`` entries)."""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from keel.cross_cutting.error import ConfigurationError
from keel.infrastructure.event_store._projection import Projection

_VARIABLE = "KEEL_EVENT_STORE__PROJECTIONS"


def load_projections(specs: Iterable[str]) -> list[Projection]:
    """The projections the entries name: each a ``Projection``, a subclass (built without arguments) or a list."""
    found: list[Projection] = []
    for spec in specs:
        module_name, _, attribute = spec.partition(":")
        if not module_name or not attribute:
            raise ConfigurationError(
                f"{spec!r} is not `module:attribute` (e.g. `myapp.projections:PROJECTIONS`)", variables=[_VARIABLE]
            )
        try:
            target: object = importlib.import_module(module_name)
            for part in attribute.split("."):
                target = getattr(target, part)
        except (ImportError, AttributeError) as exc:
            raise ConfigurationError(f"cannot load projections from {spec!r}: {exc}", variables=[_VARIABLE]) from exc
        found.extend(_projections_in(target, spec))
    return found


def _projections_in(target: object, spec: str) -> list[Projection]:
    if isinstance(target, Projection):
        return [target]
    if isinstance(target, type) and issubclass(target, Projection):
        return [target()]
    if isinstance(target, list | tuple):
        return [p for item in target for p in _projections_in(item, spec)]
    raise ConfigurationError(
        f"{spec!r} is {type(target).__name__}, not a Projection, a Projection subclass or a list of them",
        variables=[_VARIABLE],
    )
