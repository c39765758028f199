"""Cosmic Python's allocation service on keel.

``domain/`` is pure Python (no SQLAlchemy), mapped classically in
``orm.py``; ``handlers.py`` is the service layer; ``api.py`` the FastAPI
entry point; ``container.py`` wires it all with :class:`keel.container.KeelContainer`.
"""
