"""Which sessions are keel's: the mark keel's session listeners look for first.

keel's ``Session`` listeners (value checks, aggregate-wide locking, stale
deletes, the soft-delete filter) are registered on SQLAlchemy's ``Session``
class, so they fire for every session in the process. Each returns at once
for a session without this mark, so a script's or a migration's own
``sessionmaker`` pays nothing for them and sees plain SQLAlchemy.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

#: The ``session.info`` key of keel's sessions: set by ``create_session_factory``
#: (every session inherits its factory's ``info``), by a unit of work on the
#: session it opens and by a repository on the session it is built on. Its
#: value turns the soft-delete filter on or off; its presence makes the
#: session keel's.
HIDE_SOFT_DELETED = "keel.hide_soft_deleted"


def is_keel_session(session: Session) -> bool:
    """Whether keel's session listeners apply to ``session``."""
    return HIDE_SOFT_DELETED in session.info
