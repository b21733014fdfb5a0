"""Work-arounds for bugs in the Qt bindings, each detected at run time, never assumed.

PySide6 6.12 on Python 3.10/3.11 treats the singletons that Python 3.12 made immortal as
if they were immortal here too: every call of a C++ method returning ``void`` gives back
``None`` without taking a reference to it, and some virtual-method returns do the same
with ``True``/``False``. Each call lowers the count by one until the interpreter aborts
("Fatal Python error: none_dealloc" / "bool_dealloc") — after a few minutes of live
charts. Where the probe below sees the leak, the reference counts of the objects 3.12
made immortal (None, True, False, Ellipsis, NotImplemented, small ints, the empty
tuple/str/bytes) are raised by 2**40, which no run exhausts: that is what immortality
means in 3.12. Measured: 1.0 reference to None lost per ``QObject.setObjectName`` call
with PySide6 6.12.0 / CPython 3.11.12.
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

_applied = False


def none_refcount_leak_per_call(calls: int = 64) -> float:
    """References to ``None`` lost per void C++ call (0 on healthy bindings)."""
    from PySide6.QtCore import QObject

    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(calls):
        probe.setObjectName("phytoscope-probe")
    after = sys.getrefcount(None)
    return (before - after) / calls


def guard_none_refcount() -> bool:
    """Apply the work-around if this interpreter and binding need it; True if applied."""
    global _applied
    if _applied or sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return _applied
    if none_refcount_leak_per_call() < 0.5:
        return False
    immortal_in_312 = [None, True, False, Ellipsis, NotImplemented, (), "", b"", *range(-5, 257)]
    for obj in immortal_in_312:
        ctypes.c_ssize_t.from_address(id(obj)).value += 1 << 40  # ob_refcnt is the first field
    _applied = True
    log.info("this PySide6 assumes Python 3.12's immortal objects: made them immortal here too")
    return True
