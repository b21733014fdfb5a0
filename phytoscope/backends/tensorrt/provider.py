"""The engine provider: where the runner's engine comes from (cache, else build and cache).

Kept apart from the runner as Polygraphy keeps its loaders apart from ``TrtRunner``: the
runner (:class:`~phytoscope.backends.tensorrt.runner.TensorRTBackend`) takes serialised
engine bytes or a callable returning them, and this is that callable. ``phytoscope
build-engine`` calls the same provider ahead of time, so the first classification on a
Jetson does not wait minutes, and a benchmark or a test can hand the runner an engine it
built itself.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from phytoscope.backends.options import TrtOptions
from phytoscope.backends.tensorrt.build import build_engine
from phytoscope.backends.tensorrt.cache import EngineCache, EngineKey
from phytoscope.backends.tensorrt.runtime import current_gpu, import_tensorrt
from phytoscope.modelcard import ModelCard
from phytoscope.progress import Progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineResult:
    """A serialised engine and where it came from."""

    engine: bytes
    path: Path | None
    """the cached file, None when nothing could be written"""
    key: EngineKey
    built: bool
    """True when it was built now, False when it came from the cache"""
    seconds: float
    """build time (0 from the cache)"""


class EngineProvider:
    """Gives the engine of ``card`` at ``precision``: cached, else built and cached.

    Call it with a CUDA context current on this thread (the runner's, or one the command
    made): the GPU it names is part of the engine key. Calling it twice looks the cache up
    again, so a second runner finds the engine the first one built.

    Parameters
    ----------
    card
        The FP32 ONNX model card the engine is built from.
    precision
        Engine precision: fp32, fp16 or int8.
    options
        Batch (the optimisation profile), workspace, DLA core, cache folder, calibration
        images; ``options.force`` rebuilds even when a matching engine is cached.
    progress
        Build progress (stage :data:`phytoscope.backends.tensorrt.build.STAGE`) and cancel.
    cache
        The engine cache (default: ``options.cache_dir`` with the user-cache fallback).
    """

    def __init__(
        self,
        card: ModelCard,
        precision: str,
        options: TrtOptions | None = None,
        progress: Progress | None = None,
        cache: EngineCache | None = None,
    ):
        self.card = card
        self.options = (options or TrtOptions()).check_precision(precision)
        self.precision = precision
        self.progress = Progress.of(progress)
        self.cache = cache if cache is not None else EngineCache(self.options.cache_dir)

    def key(self) -> EngineKey:
        """The key of the engine for this model, options, TensorRT and current GPU."""
        trt = import_tensorrt()
        gpu_name, capability = current_gpu()
        return EngineKey(
            model_sha256=self.card.sha256,
            tensorrt_version=trt.__version__,
            gpu_name=gpu_name,
            compute_capability=capability,
            precision=self.precision,
            batch=self.options.batch,
            dla_core=self.options.dla_core,
        )

    def __call__(self) -> EngineResult:
        return self._obtain(force=self.options.force)

    def rebuild(self, stale: EngineResult) -> EngineResult:
        """A fresh build after ``stale`` (from the cache) could not be deserialised: its
        file is removed and the engine is built and cached again."""
        if stale.path is not None:
            self.cache.discard(stale.path)
        return self._obtain(force=True)

    def _obtain(self, force: bool) -> EngineResult:
        key = self.key()
        found = None if force else self.cache.lookup(self.card.name, key)
        if found is not None:
            log.info("using cached TensorRT engine %s", found.path)
            return EngineResult(found.path.read_bytes(), found.path, key, False, 0.0)
        log.warning(
            "building a TensorRT %s engine for %s (batch %d); this happens once per model, "
            "precision and GPU and can take minutes",
            self.precision,
            self.card.label,
            self.options.batch,
        )
        started = time.perf_counter()
        engine = build_engine(
            self.card, self.precision, self.options, self.cache, key, self.progress
        )
        seconds = time.perf_counter() - started
        path = self.cache.store(
            self.card.name,
            key,
            engine,
            build_seconds=round(seconds, 1),
            workspace_mb=self.options.workspace_mb,
            model=self.card.label,
        )
        return EngineResult(engine, path, key, True, seconds)
