"""``instrument_app``: HTTP server spans for an ASGI application (opentelemetry-instrumentation-asgi).

.. code-block:: python

    app = FastAPI()
    instrument_app(app)          # install_keel does it under KEEL_TELEMETRY__ENABLED=true

Each request becomes a SERVER span, the parent of the bus's handler span,
so a request's trace continues through the database, the outbox and Pub/Sub
to the consumer. The spans go to the providers keel records on *when the
request arrives*, like keel's own spans: an application instrumented before
``configure_telemetry`` (FastAPI apps are built at import) still reports to
the providers configured after.
"""

from __future__ import annotations

from typing import Any

from keel.cross_cutting.error import ConfigurationError
from keel.cross_cutting.telemetry._state import follow_current_tracer, otel_available

#: Marks an application already instrumented, so a second call adds no second span per request.
_MARK = "keel_otel_instrumented"


def instrument_app(app: Any) -> Any:
    """Give ``app`` (a Starlette/FastAPI application) an HTTP server span per request; return ``app``.

    Needs the ``otel`` extra (``ConfigurationError`` otherwise). Calling it twice
    changes nothing.
    """
    if not otel_available():
        raise ConfigurationError('HTTP spans need the otel extra: pip install "keel-framework[otel]"')
    try:
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    except ImportError as exc:  # the extra predates the ASGI instrumentation
        raise ConfigurationError(
            'HTTP spans need opentelemetry-instrumentation-asgi: pip install "keel-framework[otel]"'
        ) from exc
    state = app.state
    if getattr(state, _MARK, False):
        return app
    setattr(state, _MARK, True)
    # Added last, so outermost: keel's request middleware (correlation id, principal) runs inside the span.
    app.add_middleware(OpenTelemetryMiddleware, tracer_provider=_FollowingProvider())
    return app


class _FollowingProvider:
    """A tracer provider whose tracer records on keel's current provider (the middleware keeps the tracer)."""

    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        return follow_current_tracer()
