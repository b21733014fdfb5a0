"""One OpenBLAS thread while the head is fitted: 25x faster on a busy 2-core machine.

SciPy's L-BFGS-B (C since SciPy 1.15) calls BLAS on vectors of the head's ~13,000
parameters hundreds of times per fit; OpenBLAS's threads wake, spin and sleep for each of
those tiny calls, and on two cores shared with other work that costs more than the maths
(measured here: one 10-class head on 1,138 bank embeddings took 31.6 s with the default
threads and 1.2 s with one; scipy/scipy#23161 and optuna/optuna#6191 report the same).
This module sets every loaded OpenBLAS (numpy's and scipy's each bundle one) to one thread
for the duration of a ``with`` block and restores it after, the way threadpoolctl does,
without adding that dependency. Where no OpenBLAS is loaded (MKL, Accelerate, Windows)
it does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

_SYMBOLS = (
    ("openblas_get_num_threads", "openblas_set_num_threads"),
    ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
    ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
    ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
)
_lock = threading.Lock()


def _loaded_openblas() -> list[tuple[object, object]]:
    """(get, set) functions of every OpenBLAS this process has loaded (Linux)."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        return []
    paths = sorted(
        {
            line.split()[-1]
            for line in maps.read_text(errors="replace").splitlines()
            if "openblas" in line.rsplit("/", 1)[-1].lower() and ".so" in line
        }
    )
    found = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for get_name, set_name in _SYMBOLS:
            get, set_ = getattr(lib, get_name, None), getattr(lib, set_name, None)
            if get is not None and set_ is not None:
                found.append((get, set_))
                break
    return found


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the block with every OpenBLAS at one thread; the old counts come back after."""
    import scipy.linalg  # noqa: F401 - loads scipy's own OpenBLAS now, so it is set too

    with _lock:
        libs = _loaded_openblas()
        saved = []
        for get, set_ in libs:
            try:
                saved.append((set_, int(get())))  # type: ignore[operator]
                set_(1)  # type: ignore[operator]
            except (OSError, ValueError) as exc:  # pragma: no cover - a foreign build
                log.debug("cannot set OpenBLAS threads: %s", exc)
    try:
        yield
    finally:
        with _lock:
            for set_, count in saved:
                set_(count)  # type: ignore[operator]
