"""Runnable examples built on keel (``python -m examples.demo``)."""
