"""The desktop application: the only package that imports PySide6 and pyqtgraph.

Nothing imports ``phytoscope.gui`` but :mod:`phytoscope.commands.gui`, lazily inside
``run()``. Long work happens in workers on their own threads (see :mod:`.workers`); widgets
receive frozen results through queued signals and are touched only by the GUI thread.
"""
