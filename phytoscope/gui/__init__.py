"""The desktop application: the only package that imports PySide6 and pyqtgraph.

Nothing imports ``phytoscope.gui`` but :mod:`phytoscope.commands.gui`, lazily inside
``run()``. Long work happens in workers on their own threads (see :mod:`.workers`); widgets
receive frozen results through queued signals and are touched only by the GUI thread.
"""

try:  # before any widget exists: see qtcompat for the PySide6 6.12 / Python < 3.12 bug
    from phytoscope.gui.qtcompat import guard_none_refcount

    guard_none_refcount()
except ImportError:  # PySide6 absent or blocked: the Qt-free modules still import
    pass
