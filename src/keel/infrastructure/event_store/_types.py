"""How events become rows and back: stable type names, schema versions, upcasters.

An event is stored under its class's ``message_type`` (stable across
renames when set explicitly) and its ``schema_version`` (a class attribute,
1 when absent). Reading an older schema version runs the upcasters
registered for ``(type, version)`` one step at a time until the data has the
shape the class expects today.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

from keel.cross_cutting.error import ConfigurationError
from keel.domain.messages import DomainEvent

#: Turns the data of ``(type, version)`` into the data of ``(type, version + 1)``.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class UnknownEventTypeError(ConfigurationError):
    """A stored event's type is not known to this process: register its class (or an alias for its old name)."""

    code = "unknown_event_type"


def schema_version_of(cls: type[DomainEvent]) -> int:
    """The schema version a class writes (its ``schema_version`` attribute, 1 by default)."""
    version = getattr(cls, "schema_version", 1)
    return version if isinstance(version, int) else 1


class EventTypes:
    """The event classes a store can read, by stable name, and the upcasters of their old shapes.

    Classes are registered explicitly (:meth:`register`), when appended, or
    found among ``DomainEvent``'s subclasses when exactly one carries the
    stored name; two classes claiming one name is a ``ConfigurationError``.
    """

    def __init__(self) -> None:
        self._by_name: dict[str, type[DomainEvent]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        #: name -> (class, its schema version), for reads (a pydantic class's missing attribute is slow to look up).
        self._decoders: dict[str, tuple[type[DomainEvent], int]] = {}

    def register(self, *classes: type[DomainEvent], aliases: tuple[str, ...] = ()) -> None:
        """Make ``classes`` readable; ``aliases`` are older names the (single) class was stored under."""
        if aliases and len(classes) != 1:
            raise ConfigurationError("aliases name one class: register it on its own")
        for cls in classes:
            for name in (cls.message_type, *aliases):
                self._claim(name, cls)

    def upcaster(self, event_type: str | type[DomainEvent], from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator: register ``fn(data) -> data`` lifting ``event_type`` from ``from_version`` to the next."""
        name = event_type if isinstance(event_type, str) else event_type.message_type

        def register(fn: Upcaster) -> Upcaster:
            self.add_upcaster(name, from_version, fn)
            return fn

        return register

    def add_upcaster(self, event_type: str, from_version: int, fn: Upcaster) -> None:
        """Register ``fn`` as the step from ``from_version`` to ``from_version + 1`` of ``event_type``."""
        key = (event_type, from_version)
        if key in self._upcasters and self._upcasters[key] is not fn:
            raise ConfigurationError(f"an upcaster for {event_type!r} version {from_version} is already registered")
        self._upcasters[key] = fn

    def resolve(self, name: str) -> type[DomainEvent]:
        """The class stored under ``name``; :class:`UnknownEventTypeError` naming it when there is none."""
        cls = self._by_name.get(name)
        if cls is not None:
            return cls
        found = {c for c in _subclasses(DomainEvent) if c.__dict__.get("message_type") == name}
        if len(found) > 1:
            raise ConfigurationError(
                f"event type {name!r} is claimed by several classes ({_names(found)}): "
                "give them distinct message_type names or register the one this store reads",
                event_type=name,
            )
        if not found:
            raise UnknownEventTypeError(
                f"unknown event type {name!r}: import or register its class "
                "(EventTypes.register, or aliases= for a renamed one)",
                event_type=name,
            )
        cls = found.pop()
        self._claim(name, cls)
        return cls

    def decode(self, name: str, schema_version: int, data: str | dict[str, Any], event_id: UUID) -> DomainEvent:
        """Rebuild the event of a row; ``data`` is its JSON text (or already parsed)."""
        known = self._decoders.get(name)
        if known is None:
            cls = self.resolve(name)
            known = self._decoders[name] = (cls, schema_version_of(cls))
        cls, target = known
        if schema_version == target:
            return cls.model_validate_json(data) if isinstance(data, str) else cls.model_validate(data)
        payload: dict[str, Any] = json.loads(data) if isinstance(data, str) else dict(data)
        version = schema_version
        while version < target:
            step = self._upcasters.get((name, version))
            if step is None:
                raise ConfigurationError(
                    f"event {event_id} of type {name!r} has schema version {version} but {cls.__name__} "
                    f"expects {target}: register an upcaster for ({name!r}, {version})",
                    event_type=name,
                    schema_version=version,
                )
            payload = step(payload)
            version += 1
        if version != target:
            raise ConfigurationError(
                f"event {event_id} of type {name!r} has schema version {schema_version}, newer than "
                f"{cls.__name__}'s {target}: this code is older than the data",
                event_type=name,
                schema_version=schema_version,
            )
        payload["event_id"] = str(event_id)
        return cls.model_validate(payload)

    def _claim(self, name: str, cls: type[DomainEvent]) -> None:
        held = self._by_name.get(name)
        if held is not None and held is not cls:
            raise ConfigurationError(
                f"event type {name!r} is already registered for {held.__qualname__}, not {cls.__qualname__}",
                event_type=name,
            )
        self._by_name[name] = cls
        self._decoders.pop(name, None)


def _subclasses(cls: type[DomainEvent]) -> Iterator[type[DomainEvent]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _names(classes: set[type[DomainEvent]]) -> str:
    return ", ".join(sorted(f"{c.__module__}.{c.__qualname__}" for c in classes))


#: The registry stores use unless given their own.
default_event_types = EventTypes()
