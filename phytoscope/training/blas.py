"""One BLAS thread while a head is fitted: 25x faster on a busy 2-core machine.

SciPy's L-BFGS-B calls BLAS on vectors of the head's ~13,000 parameters hundreds of times
per fit; OpenBLAS's threads wake, spin and sleep for each of those tiny calls, and on two
cores shared with other work that costs more than the maths (measured here: one 10-class
head on 1,138 bank embeddings took 31.6 s with the default threads and 1.2 s with one;
scipy/scipy#23161 and optuna/optuna#6191 report the same). threadpoolctl limits every BLAS
the process has loaded (numpy's and scipy's each bundle one) for a ``with`` block and
restores them after.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield
