"""Cross-cutting concerns: errors, security, telemetry, cache."""
