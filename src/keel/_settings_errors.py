"""Turning pydantic validation errors into one :class:`ConfigurationError` naming ``KEEL_*`` variables.

Shared by :mod:`keel.config` and the settings sections that validate on their own
(:class:`keel.config.DatabaseSettings`); values are never echoed (they may be secrets).
"""

from __future__ import annotations

from collections.abc import Sequence

import pydantic

from keel.cross_cutting.error import ConfigurationError

ENV_PREFIX = "KEEL_"
NESTED_DELIMITER = "__"


def env_var(loc: tuple[int | str, ...]) -> str:
    """The environment variable behind a settings field location."""
    # List indexes (a bad URL in ``replicas``) belong to the one variable holding the list.
    return ENV_PREFIX + NESTED_DELIMITER.join(str(part).upper() for part in loc if not isinstance(part, int))


def configuration_error(
    exc: pydantic.ValidationError | None,
    prefix: tuple[str, ...] = (),
    *,
    unknown: Sequence[dict[str, str]] = (),
) -> ConfigurationError:
    """Name every offending variable; never echo values (they may be secrets).

    ``prefix`` is where the failing model sits in :class:`KeelSettings`
    (``("database",)`` for a :class:`DatabaseSettings` built on its own).
    ``unknown`` are variables no setting reads; one pydantic also refused
    (an extra key inside a section) is reported once, with its hint.
    """
    errors = exc.errors(include_url=False, include_input=False) if exc is not None else []
    problems = [{"variable": env_var((*prefix, *err["loc"])), "msg": err["msg"], "type": err["type"]} for err in errors]
    return merged_errors(problems, unknown)


def merged_errors(problems: list[dict[str, str]], unknown: Sequence[dict[str, str]]) -> ConfigurationError:
    """One error for ``problems`` and ``unknown`` variables, each variable named once (with its hint)."""
    hints: dict[str, dict[str, str] | None] = {problem["variable"].upper(): problem for problem in unknown}
    problems = [hints.pop(problem["variable"].upper(), None) or problem for problem in problems]
    problems += [hint for hint in hints.values() if hint is not None]
    summary = "; ".join(f"{p['variable']}: {p['msg']}" for p in problems)
    return ConfigurationError(
        f"invalid settings: {summary}", variables=[p["variable"] for p in problems], errors=problems
    )
