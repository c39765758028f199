"""Strict ``KEEL_*`` variables and the deployment environment, for :mod:`keel.config`.

pydantic-settings reads the variables that match a field and ignores every
other one, so ``KEEL_DATABASE_URL`` (one underscore) would leave keel on its
local SQLite default without a word. Here every ``KEEL_*`` variable, from the
process environment and from the ``.env`` files, must be a setting, a whole
section (``KEEL_DATABASE`` as JSON), or one the settings class declares in
``extra_variables``.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

from dotenv import dotenv_values
from pydantic import BaseModel

#: The deployment environments ``KEEL_ENV`` may name, in promotion order.
ENVIRONMENTS = ("development", "test", "staging", "production")
#: Other spellings people use, each mapped to its environment (matched case-insensitively).
ENVIRONMENT_ALIASES = {
    "dev": "development",
    "develop": "development",
    "local": "development",
    "testing": "test",
    "stage": "staging",
    "prod": "production",
}

#: ``KEEL_*`` variables that keel's own tooling reads and that are not settings:
#: scripts/, .ci/run, the test suite and the benchmarks. Kept as they are (CI
#: and every contributor's shell use them) rather than renamed; a test fails if
#: one of them ever becomes a setting's name, and another if the repository
#: uses a ``KEEL_*`` name that is neither a setting nor listed here.
TOOLING_VARIABLES = frozenset(
    {
        "KEEL_REQUIRE_SERVICES",  # tests: a missing service fails instead of skipping
        "KEEL_TEST_POSTGRES_URL",  # tests: the PostgreSQL server that test databases are created on
        "KEEL_BENCH_DATABASE_URL",  # benchmarks: the database they run on
        "KEEL_BENCH_REDIS_URL",  # benchmarks: the Redis the cache benchmark uses
        "KEEL_TEST_REDIS_URL",  # tests: the shared Redis the cache tests use
        "KEEL_BENCH_PRIMARY_URL",  # benchmarks/replicas.py: an existing primary (with KEEL_BENCH_REPLICA_URL)
        "KEEL_BENCH_REPLICA_URL",  # benchmarks/replicas.py: a streaming replica of KEEL_BENCH_PRIMARY_URL
        "KEEL_BENCH_BATCH",  # benchmarks: rows per load of bulk_insert's instruction count
        "KEEL_SOAK",  # tests/soak: 1 runs the long form of the load soak
        "KEEL_VENV",  # scripts/: the virtual environment to use
    }
)


def normalise_environment(value: object) -> str:
    """The environment ``value`` names (``"Prod"`` -> ``"production"``); ValueError for an unknown one."""
    if not isinstance(value, str):
        raise ValueError("must be a string")  # noqa: TRY004 -- pydantic turns ValueError, not TypeError, into a field error
    name = value.strip().lower()
    name = ENVIRONMENT_ALIASES.get(name, name)
    if name not in ENVIRONMENTS:
        aliases = ", ".join(f"{alias}={target}" for alias, target in ENVIRONMENT_ALIASES.items())
        raise ValueError(f"unknown environment; expected one of {', '.join(ENVIRONMENTS)} (aliases: {aliases})")
    return name


def known_variables(model: type[BaseModel], prefix: str, delimiter: str) -> tuple[set[str], set[str]]:
    """``(names, open_prefixes)``: every variable ``model`` reads, upper-cased.

    A section is a name too (it takes JSON); a mapping-typed field accepts any
    key below it, so it contributes an open prefix.
    """
    names: set[str] = set()
    open_prefixes: set[str] = set()
    for field_name, field in model.model_fields.items():
        variable = f"{prefix}{field_name}".upper()
        names.add(variable)
        for annotation in _alternatives(field.annotation):
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                inner, inner_open = known_variables(annotation, variable + delimiter, delimiter)
                names |= inner
                open_prefixes |= inner_open
            elif get_origin(annotation) in (dict, Mapping) or annotation is dict:
                open_prefixes.add(variable + delimiter)
    return names, open_prefixes


def _alternatives(annotation: Any) -> tuple[Any, ...]:
    if get_origin(annotation) in (Union, UnionType):
        return tuple(arg for arg in get_args(annotation) if arg is not type(None))
    return (annotation,)


def env_file_paths(env_file: Any) -> list[Path]:
    """The files behind pydantic-settings' ``env_file`` option (None, one path, or several)."""
    if env_file is None:
        return []
    if isinstance(env_file, str | os.PathLike):
        return [Path(env_file)]
    return [Path(item) for item in env_file]


def unknown_variables(
    model: type[BaseModel],
    *,
    prefix: str,
    delimiter: str,
    allowed: Iterable[str],
    env_files: Sequence[Path],
    encoding: str | None,
) -> list[dict[str, str]]:
    """A problem per ``KEEL_*`` variable that no setting reads, with the nearest setting as a hint.

    Names compare case-insensitively, as pydantic-settings reads them.
    Without a prefix every variable of the process would be suspect, so
    nothing is checked.
    """
    if not prefix:
        return []
    names, open_prefixes = known_variables(model, prefix, delimiter)
    known = names | {name.upper() for name in allowed}
    found: dict[str, str] = {}  # upper-cased -> as written, first source wins
    candidates = list(os.environ)
    for path in env_files:
        if path.is_file():
            candidates += [key for key in dotenv_values(path, encoding=encoding) if key]
    for name in candidates:
        upper = name.upper()
        if upper.startswith(prefix.upper()) and upper not in known and not upper.startswith(tuple(open_prefixes)):
            found.setdefault(upper, name)
    problems = []
    for upper, name in sorted(found.items()):
        nearest = difflib.get_close_matches(upper, sorted(names), n=1, cutoff=0.6)
        hint = f" (did you mean {nearest[0]}?)" if nearest else ""
        problems.append({"variable": name, "msg": f"not a keel setting{hint}", "type": "unknown_setting"})
    return problems
