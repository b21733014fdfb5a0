"""Building a TensorRT engine from the ONNX model (needs TensorRT and a current CUDA context).

One code path serves TensorRT 8.5 to 10.x. The build reports through the one progress
contract (:class:`phytoscope.progress.Progress`, stage :data:`STAGE`) and stops when its
cancel token is set: TensorRT 10's progress monitor is asked at every step, 8.x builds stop
at the next coarse step. :class:`PhaseTracker` (pure Python, unit-tested) turns TensorRT's
nested phases into those reports.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phytoscope.backends.options import TrtOptions
from phytoscope.backends.tensorrt.cache import EngineCache, EngineKey, atomic_write
from phytoscope.backends.tensorrt.calibration import (
    calibration_batches,
    images_digest,
    list_images,
    make_calibrator,
)
from phytoscope.backends.tensorrt.runtime import (
    import_pycuda_driver,
    import_tensorrt,
    parse_version,
    trt_logger,
)
from phytoscope.errors import BackendError, ConfigError, ModelError
from phytoscope.modelcard import ModelCard
from phytoscope.progress import Progress

log = logging.getLogger(__name__)

STAGE = "build engine"
"""The progress stage of an engine build (``done``/``total``: steps of TensorRT's outermost
build phase, unknown until TensorRT announces it)."""


@dataclass
class PhaseTracker:
    """Turns TensorRT's nested build phases into :data:`STAGE` progress reports.

    ``done``/``total`` follow the outermost phase only (inner phases repeat per layer or
    tactic and would make a bar jump back); the message names the innermost phase and its
    step. TensorRT may call from several of its threads, hence the lock.
    """

    progress: Progress = field(default_factory=Progress)
    _phases: dict[str, tuple[str | None, int]] = field(default_factory=dict)
    _outer: tuple[int, int | None] = (0, None)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def phase_start(self, phase: str, parent: str | None, steps: int) -> None:
        with self._lock:
            self._phases[phase] = (parent, max(int(steps), 1))
            if parent is None:
                self._outer = (0, max(int(steps), 1))
            self._emit(phase)

    def step_complete(self, phase: str, step: int) -> bool:
        """Report a finished step; False asks TensorRT to stop (the user cancelled)."""
        with self._lock:
            parent, steps = self._phases.get(phase, (None, 1))
            if parent is None:
                self._outer = (min(step + 1, steps), steps)
            self._emit(f"{phase} {step + 1}/{steps}")
        return not self.progress.cancelled

    def phase_finish(self, phase: str) -> None:
        with self._lock:
            self._phases.pop(phase, None)

    def _emit(self, message: str) -> None:
        done, total = self._outer
        self.progress.update(STAGE, done, total, message)


def _make_progress_monitor(trt: Any, tracker: PhaseTracker) -> Any:
    class _Monitor(trt.IProgressMonitor):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            tracker.phase_start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            return tracker.step_complete(phase_name, step)

        def phase_finish(self, phase_name: str) -> None:
            tracker.phase_finish(phase_name)

    return _Monitor()


def build_engine(
    card: ModelCard,
    precision: str,
    options: TrtOptions,
    cache: EngineCache,
    key: EngineKey,
    progress: Progress | None = None,
) -> bytes:
    """A serialised engine of ``card``'s ONNX model (a CUDA context must be current).

    Raises
    ------
    Cancelled
        When ``progress``'s cancel token was set during the build.
    ModelError, ConfigError, BackendError
        With a message saying what to change (model export, options, memory).
    """
    # Calls newer releases deprecate (EXPLICIT_BATCH, platform_has_fast_*, implicit INT8
    # calibration) keep 8.5 working; their DeprecationWarnings say nothing a user can act on.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return _Build(
            card, precision, options.check_precision(precision), cache, key, progress
        ).run()


class _Build:
    """One engine build, step by step (each step a method, in the order TensorRT needs)."""

    def __init__(
        self,
        card: ModelCard,
        precision: str,
        options: TrtOptions,
        cache: EngineCache,
        key: EngineKey,
        progress: Progress | None,
    ):
        self.card, self.precision, self.options = card, precision, options
        self.cache, self.key = cache, key
        self.progress = Progress.of(progress)
        self.trt = import_tensorrt()
        self.logger = trt_logger(self.trt)
        self.onnx_path = card.model_path
        self.calibrator: Any = None

    def report(self, message: str) -> None:
        self.progress.update(STAGE, 0, None, message)

    def run(self) -> bytes:
        trt = self.trt
        self.report(f"parsing {self.onnx_path.name}")
        builder = trt.Builder(self.logger)
        major = parse_version(trt.__version__)[0]
        flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, self.logger)  # keep: the network refers to it
        shape, input_name = self._parse(network, parser)
        self.progress.check("TensorRT engine build cancelled")
        config = builder.create_builder_config()
        if self.options.workspace_mb is not None:
            config.set_memory_pool_limit(
                trt.MemoryPoolType.WORKSPACE, self.options.workspace_mb << 20
            )
        profile = builder.create_optimization_profile()
        rest, batch = shape[1:], self.options.batch
        profile.set_shape(input_name, (1, *rest), (batch, *rest), (batch, *rest))
        config.add_optimization_profile(profile)
        self._precision_flags(builder, config, profile)
        self._dla(builder, config)
        timing_path = self._timing_cache(config)
        tracker = PhaseTracker(self.progress)
        # TensorRT holds only a pointer to the monitor: this local keeps it alive
        monitor = _make_progress_monitor(trt, tracker) if hasattr(trt, "IProgressMonitor") else None
        if monitor is not None:
            config.progress_monitor = monitor
        self.progress.check("TensorRT engine build cancelled")
        self.report(f"building {self.precision} engine (batch {batch}); this can take minutes")
        started = time.perf_counter()
        try:
            serialized = builder.build_serialized_network(network, config)
        finally:
            if self.calibrator is not None:
                self.calibrator.free()
            del monitor
        self.progress.check("TensorRT engine build cancelled")
        if serialized is None:
            raise BackendError(
                f"TensorRT could not build a {self.precision} engine for {self.onnx_path.name} "
                "(see the log above); on a small board try a smaller --workspace-mb or "
                "--batch, or fp16"
            )
        log.info("built %s engine in %.1f s", self.precision, time.perf_counter() - started)
        if timing_path is not None:
            try:
                atomic_write(timing_path, bytes(config.get_timing_cache().serialize()))
            except OSError as exc:
                log.warning("could not keep the timing cache %s: %s", timing_path, exc)
        self.progress.update(STAGE, 1, 1, "engine built")
        return bytes(serialized)

    def _parse(self, network: Any, parser: Any) -> tuple[tuple[int, ...], str]:
        """Parse the ONNX file and check it against the card; (input shape, input name)."""
        name = self.onnx_path.name
        if not parser.parse_from_file(str(self.onnx_path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ModelError(f"TensorRT cannot parse {name}: {errors}")
        expected_outputs = 1 if self.card.novelty is None else 2
        if network.num_inputs != 1 or network.num_outputs != expected_outputs:
            raise ModelError(
                f"{name}: expected one input and {expected_outputs} output(s) "
                "(logits, and novelty where the card has one)"
            )
        inp = network.get_input(0)
        shape = tuple(inp.shape)
        outputs = [network.get_output(i) for i in range(network.num_outputs)]
        logits = next((o for o in outputs if o.name == "logits"), outputs[0])
        self.card.check_io_shapes(shape, tuple(logits.shape)[-1])
        if shape[0] > 0 and shape[0] != self.options.batch:
            raise ModelError(
                f"{name} has a fixed batch of {shape[0]}; export it with a dynamic batch "
                f"(`phytoscope export`) or build with --batch {shape[0]}"
            )
        return shape, inp.name

    def _precision_flags(self, builder: Any, config: Any, profile: Any) -> None:
        trt, precision = self.trt, self.precision
        if precision in ("fp16", "int8"):
            if not getattr(builder, "platform_has_fast_fp16", True):
                log.warning("this GPU has no fast FP16; the %s engine may be slow", precision)
            config.set_flag(trt.BuilderFlag.FP16)  # INT8 layers fall back to FP16, not FP32
        if precision != "int8":
            return
        if not getattr(builder, "platform_has_fast_int8", True):
            log.warning("this GPU has no fast INT8; the engine may be slow")
        config.set_flag(trt.BuilderFlag.INT8)
        files: list[Path] = []
        digest = "nocalibimages"
        if self.options.calibration_images is not None:
            files = list_images(self.options.calibration_images, self.options.calibration_limit)
            digest = images_digest(files)
        calib_cache = self.cache.calibration_cache_path(self.key, digest)
        if not files and (calib_cache is None or not calib_cache.is_file()):
            raise ConfigError(
                "INT8 needs calibration images: build the engine once with `phytoscope "
                "build-engine MODEL --precision int8 --calibration-images DIR` (a few hundred "
                "real images of the kind you will classify); later runs reuse the cached engine"
            )
        batch = self.options.batch
        self.calibrator = make_calibrator(
            trt,
            import_pycuda_driver(),
            calibration_batches(files, self.card.input, batch),
            batch,
            self.card.input,
            calib_cache,
            self.progress.cancel,
        )
        config.int8_calibrator = self.calibrator
        config.set_calibration_profile(profile)
        self.report(f"INT8 calibration on {len(files) or 'cached'} images")

    def _dla(self, builder: Any, config: Any) -> None:
        core = self.options.dla_core
        if core is None:
            return
        if builder.num_DLA_cores == 0:
            raise ConfigError(
                "this GPU has no DLA cores (only Jetson Xavier/Orin boards do); drop --dla-core"
            )
        if not 0 <= core < builder.num_DLA_cores:
            raise ConfigError(
                f"DLA core {core} does not exist (this board has {builder.num_DLA_cores})"
            )
        config.default_device_type = self.trt.DeviceType.DLA
        config.DLA_core = core
        config.set_flag(self.trt.BuilderFlag.GPU_FALLBACK)

    def _timing_cache(self, config: Any) -> Path | None:
        """Load the timing cache into ``config`` (a new one when damaged); its path."""
        timing_path = self.cache.timing_cache_path(self.key.tensorrt_version, self.key.gpu_name)
        blob = b""
        if timing_path is not None and timing_path.is_file():
            blob = timing_path.read_bytes()
        try:
            timing = config.create_timing_cache(blob)
        except Exception:  # noqa: BLE001 - a damaged cache file only costs build time
            timing = None
        if timing is None or not config.set_timing_cache(timing, False):
            log.warning(
                "timing cache %s is damaged or does not fit this TensorRT/GPU; starting a new one",
                timing_path,
            )
            timing = config.create_timing_cache(b"")
            config.set_timing_cache(timing, False)
        return timing_path
