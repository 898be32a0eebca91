"""Herald: live events from Kafka to browsers over WebSocket, SSE and cacheable HTTP."""

# The one place the version is written (pyproject.toml reads it; openapi.yaml must match).
__version__ = "0.2.0"
