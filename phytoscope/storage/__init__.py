"""SQLite results store (see :mod:`phytoscope.storage.store`)."""

from phytoscope.storage.store import Store

__all__ = ["Store"]
