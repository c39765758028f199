"""Liveness and readiness checks; the public path is :mod:`keel.health`."""

from __future__ import annotations
