"""The Alembic environment behind ``keel db``: an ``env.py`` and a template that no application edits."""
