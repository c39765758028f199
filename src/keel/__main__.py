"""``python -m keel``: the ``keel`` command."""

from __future__ import annotations

import sys

from keel.cli import main

if __name__ == "__main__":
    sys.exit(main())
