"""Herald: live events from Kafka to browsers over WebSocket, SSE and cacheable HTTP."""
