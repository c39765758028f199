"""``python -m keel``: the ``keel`` command."""

from __future__ import annotations

from keel.cli import main

raise SystemExit(main())
