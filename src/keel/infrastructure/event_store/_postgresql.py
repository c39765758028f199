"""PostgreSQL's append: the lock, the version claim and the inserts in one statement, one round trip.

Writers are serialised by a transaction-scoped advisory lock
(:data:`APPEND_LOCK_KEY`), taken by the statement itself before it claims the
stream's version or draws a position, and held until the transaction ends.
PostgreSQL makes a commit visible before it releases the transaction's
locks, so positions become visible in the order they were drawn and
``read_all`` cannot see N+1 before N (docs/event-store.md, "Ordering"). The
advisory lock serialises exactly what ``LOCK TABLE keel_events IN EXCLUSIVE
MODE`` would, without conflicting with autovacuum or needing a statement of
its own.

Standalone, the statement runs in autocommit: one statement is its own
transaction, so an append costs a single round trip.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, TextClause, text

from keel.domain.streams import ANY, NO_STREAM, STREAM_EXISTS, ExpectedVersion

#: The advisory lock every keel append takes ("keel" in ASCII); anything else inserting
#: into keel_events must take it too (``SELECT pg_advisory_xact_lock(1801807212)``).
APPEND_LOCK_KEY = 0x6B65656C

_LOCK = f"locked AS (SELECT pg_advisory_xact_lock({APPEND_LOCK_KEY}) AS held)"
#: The parameters, typed once (asyncpg binds by the types the server infers).
_PARAMS = (
    "p AS (SELECT CAST(:stream_id AS varchar) AS stream_id, CAST(:count AS integer) AS count, "
    "CAST(:expected AS integer) AS expected, CAST(:now AS timestamptz) AS now)"
)

_CLAIMS = {
    "new": """INSERT INTO keel_streams (stream_id, version, updated_at)
        SELECT p.stream_id, p.count, p.now FROM locked, p
        ON CONFLICT (stream_id) DO NOTHING
        RETURNING version - (SELECT count FROM p) AS previous""",
    "exact": """UPDATE keel_streams SET version = p.expected + p.count, updated_at = p.now
        FROM locked, p WHERE keel_streams.stream_id = p.stream_id AND keel_streams.version = p.expected
        RETURNING keel_streams.version - p.count AS previous""",
    "exists": """UPDATE keel_streams SET version = keel_streams.version + p.count, updated_at = p.now
        FROM locked, p WHERE keel_streams.stream_id = p.stream_id
        RETURNING keel_streams.version - p.count AS previous""",
    "any": """INSERT INTO keel_streams (stream_id, version, updated_at)
        SELECT p.stream_id, p.count, p.now FROM locked, p
        ON CONFLICT (stream_id) DO UPDATE
            SET version = keel_streams.version + EXCLUDED.version, updated_at = EXCLUDED.updated_at
        RETURNING version - (SELECT count FROM p) AS previous""",
}

_INSERT = """
INSERT INTO keel_events (event_id, stream_id, version, event_type, schema_version, data, metadata, recorded_at)
SELECT e.event_id, p.stream_id, claimed.previous + e.n, e.event_type, e.schema_version,
       CAST(e.data AS jsonb), CAST(:metadata AS jsonb), p.now
FROM claimed, p,
     unnest(CAST(:event_ids AS uuid[]), CAST(:event_types AS text[]), CAST(:schema_versions AS integer[]),
            CAST(:data AS text[])) WITH ORDINALITY AS e(event_id, event_type, schema_version, data, n)
ORDER BY e.n
RETURNING position, version
"""

_STATEMENTS: dict[str, TextClause] = {
    kind: text(f"WITH {_PARAMS}, {_LOCK}, claimed AS ({claim}) {_INSERT}") for kind, claim in _CLAIMS.items()
}


def _kind(expected: ExpectedVersion) -> str:
    if expected is NO_STREAM or expected == 0:
        return "new"
    if expected is STREAM_EXISTS:
        return "exists"
    if expected is ANY:
        return "any"
    return "exact"


def append(
    conn: Connection,
    stream_id: str,
    rows: list[dict[str, Any]],
    metadata_json: str,
    expected: ExpectedVersion,
    now: datetime,
) -> list[tuple[int, int]] | None:
    """Claim the versions and insert ``rows``: (position, version) per row in order, or None on a mismatch."""
    params: dict[str, Any] = {
        "stream_id": stream_id,
        "count": len(rows),
        "now": now,
        "metadata": metadata_json,
        "event_ids": [row["event_id"] for row in rows],
        "event_types": [row["event_type"] for row in rows],
        "schema_versions": [row["schema_version"] for row in rows],
        "data": [row["data"] for row in rows],
        "expected": expected if isinstance(expected, int) else None,
    }
    inserted = conn.execute(_STATEMENTS[_kind(expected)], params).all()
    if not inserted:
        return None
    return sorted(((int(p), int(v)) for p, v in inserted), key=lambda pv: pv[1])


_SET_VERSIONS = text(
    """INSERT INTO keel_streams (stream_id, version, updated_at)
    SELECT s.stream_id, s.version, CAST(:now AS timestamptz)
    FROM unnest(CAST(:stream_ids AS varchar[]), CAST(:versions AS integer[])) AS s(stream_id, version)
    ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version, updated_at = EXCLUDED.updated_at"""
)

_INSERT_MANY = text(
    """INSERT INTO keel_events (event_id, stream_id, version, event_type, schema_version, data, metadata, recorded_at)
    SELECT e.event_id, e.stream_id, e.version, e.event_type, e.schema_version,
           CAST(e.data AS jsonb), CAST(:metadata AS jsonb), CAST(:now AS timestamptz)
    FROM unnest(CAST(:event_ids AS uuid[]), CAST(:stream_ids AS varchar[]), CAST(:versions AS integer[]),
                CAST(:event_types AS text[]), CAST(:schema_versions AS integer[]), CAST(:data AS text[]))
         WITH ORDINALITY AS e(event_id, stream_id, version, event_type, schema_version, data, n)
    ORDER BY e.n
    RETURNING position"""
)


def set_versions(conn: Connection, versions: dict[str, int], now: datetime) -> None:
    """Write many streams' new versions in one statement (under the append lock)."""
    conn.execute(_SET_VERSIONS, {"stream_ids": list(versions), "versions": list(versions.values()), "now": now})


def insert_many(conn: Connection, rows: list[dict[str, Any]], metadata_json: str, now: datetime) -> list[int]:
    """Insert every row in one statement (arrays, not a VALUES list); positions in the rows' order."""
    params = {
        "event_ids": [row["event_id"] for row in rows],
        "stream_ids": [row["stream_id"] for row in rows],
        "versions": [row["version"] for row in rows],
        "event_types": [row["event_type"] for row in rows],
        "schema_versions": [row["schema_version"] for row in rows],
        "data": [row["data"] for row in rows],
        "metadata": metadata_json,
        "now": now,
    }
    # Positions are drawn in ORDER BY order under the append lock: sorted, they are the rows' order.
    return sorted(int(p) for p in conn.execute(_INSERT_MANY, params).scalars())
