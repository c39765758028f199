"""The ``keel`` command line (grows with the outbox relay and migrations)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from keel import __version__


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="keel", description="keel: the shared floor of Python services")
    parser.add_argument("--version", action="version", version=f"keel {__version__}")
    parser.parse_args(argv)
    parser.print_help()
    return 0


__all__ = ["main"]


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
