"""Headless logic: no Qt, no concrete inference engine (those are injected)."""
