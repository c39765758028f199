"""Case-sensitive LIKE on every backend.

PostgreSQL's ``LIKE`` is case-sensitive; SQLite's ignores ASCII case unless
``PRAGMA case_sensitive_like`` is on, a per-connection switch that would
also change every ``LIKE`` the application writes itself. So a case-sensitive
:class:`~keel.infrastructure.repository.filters.Like` compiles to ``GLOB`` on
SQLite instead (always case-sensitive, with its own wildcards ``*`` and
``?``, and ``[...]`` to quote them) and to ``LIKE ... ESCAPE`` elsewhere.
Both patterns are bound parameters.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

LIKE_ESCAPE = "\\"
_GLOB_SPECIAL = frozenset("*?[")


def escape_glob(text: str) -> str:
    """``text`` as a literal GLOB pattern: ``*``, ``?`` and ``[`` each wrapped in brackets."""
    return "".join(f"[{char}]" if char in _GLOB_SPECIAL else char for char in text)


class CaseSensitiveLike(ColumnElement[bool]):
    """``attribute LIKE pattern``, case-sensitive on every backend (``GLOB`` on SQLite)."""

    __visit_name__ = "keel_case_sensitive_like"
    inherit_cache = True
    _traverse_internals = [
        ("like_clause", InternalTraversal.dp_clauseelement),
        ("glob_clause", InternalTraversal.dp_clauseelement),
    ]
    type = Boolean()

    def __init__(self, attribute: Any, like_pattern: str, glob_pattern: str) -> None:
        #: What every backend but SQLite runs (and what the in-memory twin evaluates).
        self.like_clause: ColumnElement[bool] = attribute.like(like_pattern, escape=LIKE_ESCAPE)
        self.glob_clause: ColumnElement[bool] = attribute.op("GLOB", is_comparison=True)(glob_pattern)


@compiles(CaseSensitiveLike)
def _compile_like(element: CaseSensitiveLike, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.like_clause, **kw))


@compiles(CaseSensitiveLike, "sqlite")
def _compile_glob(element: CaseSensitiveLike, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.glob_clause, **kw))
