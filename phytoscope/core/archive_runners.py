"""The archive's schedulers: a local process pool, or Ray Data actors on a cluster.

They only schedule; each worker process builds one :class:`~phytoscope.core.archive.
UnitProcessor` (loading the backend once) and feeds it unit after unit.
"""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from typing import Any

import numpy as np

from phytoscope.core.archive import RAY_HINT, ArchiveConfig, Unit, UnitProcessor, UnitResult

_WORKER: UnitProcessor | None = None


def _pool_init(config: ArchiveConfig) -> None:
    global _WORKER
    _WORKER = UnitProcessor(config)


def _pool_run(unit: Unit) -> UnitResult:
    assert _WORKER is not None, "worker not initialised"
    return _WORKER(unit)


def run_local(units: Sequence[Unit], config: ArchiveConfig, workers: int) -> Iterable[UnitResult]:
    ctx = multiprocessing.get_context("spawn")  # no forked runtime state (ONNX Runtime threads)
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_pool_init, initargs=(config,)
    ) as pool:
        futures = [pool.submit(_pool_run, unit) for unit in units]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:  # cancelled or failed: units not started yet are not started at all
            for future in futures:
                future.cancel()


class _RayUnitActor:
    """Ray Data callable class: constructed once per actor, then fed one unit per batch."""

    def __init__(self, config: ArchiveConfig):
        self.processor = UnitProcessor(config)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        out = []
        for key, kind, paths in zip(batch["key"], batch["kind"], batch["paths"], strict=True):
            unit = Unit(key=str(key), kind=str(kind), paths=tuple(json.loads(str(paths))))
            out.append(json.dumps(asdict(self.processor(unit))))
        return {"result": np.array(out, dtype=object)}


def ray_available() -> str | None:
    if importlib.util.find_spec("ray") is None:
        return f"Ray is not installed; {RAY_HINT}"
    return None


def run_ray(
    units: Sequence[Unit], config: ArchiveConfig, workers: int, address: str | None
) -> Iterable[UnitResult]:
    import ray

    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    items = [{"key": u.key, "kind": u.kind, "paths": json.dumps(list(u.paths))} for u in units]
    dataset = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
    results = dataset.map_batches(
        _RayUnitActor,
        fn_constructor_kwargs={"config": config},
        batch_size=1,
        concurrency=workers,
        num_cpus=1,
        batch_format="numpy",
    )
    for row in results.iter_rows():
        yield UnitResult(**json.loads(row["result"]))
