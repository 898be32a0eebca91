"""The ways an event leaves Herald (and enters it over HTTP)."""
