"""Unit tests need nothing running: no Kafka, no network, no server."""

from hypothesis import settings

# Bounded, deterministic-enough property runs; no example database left in the work tree.
settings.register_profile("herald-unit", max_examples=200, deadline=None, database=None)
settings.load_profile("herald-unit")
