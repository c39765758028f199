"""``KEEL_TELEMETRY__*``: where traces and metrics go, and how logs look.

Defined beside the telemetry code rather than in :mod:`keel.config` because
``keel.cross_cutting`` sits below ``keel.config`` in the layers: the
telemetry set-up reads this section, and ``keel.config`` (its public path)
re-exports it as a section of ``KeelSettings``.
"""

from __future__ import annotations

from typing import Literal

import pydantic
from pydantic import BaseModel, Field


class TelemetrySettings(BaseModel):
    """OpenTelemetry tracing and metrics, and JSON logs."""

    model_config = pydantic.ConfigDict(extra="forbid")

    enabled: bool = Field(
        False,
        description="The container instruments its engine, bus (middleware) and commits (participant). "
        "Call `keel.telemetry.configure_telemetry` at start-up to choose where spans and metrics go.",
    )
    sql_spans: bool = Field(
        True,
        description="With `enabled`, the container's engine makes a span per SQL statement "
        "(its CPU cost per statement is in docs/performance.md).",
    )
    service_name: str = Field("keel", min_length=1, description="`service.name` of the OpenTelemetry resource.")
    otlp_endpoint: str | None = Field(
        None,
        description="Base URL of an OTLP/HTTP collector (`http://collector:4318`): traces and metrics are "
        "exported there. Unset: `console` decides.",
    )
    console: bool = Field(
        False, description="Without an OTLP endpoint, print spans and metrics to stdout (development)."
    )
    sample_ratio: float = Field(
        1.0, ge=0, le=1, description="Share of new traces recorded; a continued trace follows its parent's choice."
    )
    metrics_interval: float = Field(60.0, gt=0, description="Seconds between metric exports.")
    log_level: str = Field("INFO", description="Level of the root logger that `configure_logging` sets up.")
    log_format: Literal["json", "text"] = Field(
        "json", description="`json`: one JSON object per line, with trace, span, correlation and principal ids."
    )
