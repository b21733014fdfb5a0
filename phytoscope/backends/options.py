"""Typed settings of each inference engine, validated where they are made.

Each engine takes one frozen dataclass (:class:`OrtOptions`, :class:`TfOptions`,
:class:`TrtOptions`) instead of untyped keyword arguments, so a misspelt or out-of-range
setting fails with a clear message when the command starts, not deep inside a runtime, and
mypy sees what each engine reads. ``backends.create(..., options=...)`` takes one of them or
several (one per engine): with ``--backend auto`` each engine picks its own and uses its
defaults when none was given.

Precision is not an engine option: it is chosen once, by ``backends.create(name, precision)``
(see :meth:`phytoscope.backends.base.Backend.engine_precision`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from phytoscope.errors import ConfigError

Opt = TypeVar("Opt", bound="EngineOptions")


@dataclass(frozen=True)
class EngineOptions:
    """Base of every engine's options: validation and conversion from a plain mapping."""

    engine: ClassVar[str] = ""

    def validate(self: Opt) -> Opt:
        """Return ``self`` when every value is usable, else raise :class:`ConfigError`."""
        return self

    @classmethod
    def field_names(cls) -> frozenset[str]:
        return frozenset(f.name for f in fields(cls))

    @classmethod
    def from_mapping(cls: type[Opt], values: Mapping[str, Any]) -> Opt:
        """Options from ``{"threads": 2, ...}``: the keys this engine knows (validated)."""
        known = cls.field_names()
        return cls(**{k: v for k, v in values.items() if k in known}).validate()

    def with_values(self: Opt, **changes: Any) -> Opt:
        """A copy with some fields changed, validated."""
        return replace(self, **changes).validate()


@dataclass(frozen=True)
class OrtOptions(EngineOptions):
    """ONNX Runtime session settings.

    Parameters
    ----------
    threads
        Intra-op threads of one run; ``None`` reads ``PHYTOSCOPE_THREADS`` (0 or unset: ONNX
        Runtime's default, one per physical core).
    lanes
        Runs that may execute at once from different threads (CPU provider only; see
        :func:`phytoscope.core.pipeline.engine_options`).
    spin
        Whether the thread pool busy-waits between operators; ``None`` reads
        ``PHYTOSCOPE_ORT_SPIN`` (default on, ONNX Runtime's own default).
    providers
        Execution providers in order of preference; those not built into this ONNX Runtime
        are left out, the CPU provider is the fallback.
    """

    engine: ClassVar[str] = "onnxruntime"

    threads: int | None = None
    lanes: int = 1
    spin: bool | None = None
    providers: tuple[str, ...] = ("CPUExecutionProvider",)

    def __post_init__(self) -> None:
        if not isinstance(self.providers, tuple):  # a list from a settings file or old caller
            object.__setattr__(self, "providers", tuple(self.providers))

    def validate(self) -> OrtOptions:
        if self.threads is not None and not 0 <= int(self.threads) <= 1024:
            raise ConfigError(f"ONNX Runtime threads must be 0-1024, not {self.threads}")
        if not 1 <= int(self.lanes) <= 256:
            raise ConfigError(f"ONNX Runtime lanes must be 1-256, not {self.lanes}")
        if not self.providers or not all(isinstance(p, str) and p for p in self.providers):
            raise ConfigError(f"ONNX Runtime providers must be names, not {self.providers!r}")
        return self

    @property
    def intra_op_threads(self) -> int:
        """Threads per run, after the ``PHYTOSCOPE_THREADS`` override (0: ORT's default)."""
        if self.threads:
            return int(self.threads)
        try:
            return max(0, int(os.environ.get("PHYTOSCOPE_THREADS", "0")))
        except ValueError as exc:
            raise ConfigError(
                f"PHYTOSCOPE_THREADS must be a whole number, not "
                f"{os.environ['PHYTOSCOPE_THREADS']!r}"
            ) from exc

    @property
    def spinning(self) -> bool:
        """Busy-waiting on, after the ``PHYTOSCOPE_ORT_SPIN`` override."""
        if self.spin is not None:
            return bool(self.spin)
        return os.environ.get("PHYTOSCOPE_ORT_SPIN", "1") != "0"


@dataclass(frozen=True)
class TfOptions(EngineOptions):
    """TensorFlow/Keras settings: none yet (TensorFlow sizes its own thread pools).

    The class exists so every engine takes its options the same way, and so that a setting
    added later is typed and validated from the start.
    """

    engine: ClassVar[str] = "tensorflow"


DEFAULT_TRT_BATCH = 16


@dataclass(frozen=True)
class TrtOptions(EngineOptions):
    """TensorRT engine build and run settings.

    Parameters
    ----------
    batch
        The optimisation profile's opt and max batch (min is 1), and the largest batch one
        engine call runs (larger batches are split). Pass the batch size the pipeline uses
        (``classify --batch-size``, the window's setting) so the engine is tuned for it.
    workspace_mb
        Builder scratch-memory limit; keep it well under a 4 GB board's free memory.
    dla_core
        Build for this DLA core (Jetson Xavier/Orin); layers it cannot run fall back to the
        GPU. FP16 or INT8 only.
    device
        CUDA device index.
    cache_dir
        Engine cache folder (default: the user cache, ``config.cache_dir()/engines``).
    calibration_images
        Folder of real images for INT8 calibration (a few hundred).
    calibration_limit
        At most this many calibration images, thinned evenly.
    force
        Rebuild even when a matching engine is cached.
    """

    engine: ClassVar[str] = "tensorrt"

    batch: int = DEFAULT_TRT_BATCH
    workspace_mb: int | None = 1024
    dla_core: int | None = None
    device: int = 0
    cache_dir: Path | None = None
    calibration_images: Path | None = None
    calibration_limit: int = 512
    force: bool = False

    def __post_init__(self) -> None:
        # paths arrive as strings from settings files and old callers
        for name in ("cache_dir", "calibration_images"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))

    def validate(self) -> TrtOptions:
        if not 1 <= int(self.batch) <= 1024:
            raise ConfigError(f"batch must be between 1 and 1024, not {self.batch}")
        if self.workspace_mb is not None and self.workspace_mb < 16:
            raise ConfigError(f"workspace must be at least 16 MB, not {self.workspace_mb}")
        if self.dla_core is not None and self.dla_core < 0:
            raise ConfigError(f"DLA core must be 0 or more, not {self.dla_core}")
        if self.device < 0:
            raise ConfigError(f"CUDA device must be 0 or more, not {self.device}")
        if self.calibration_limit < 1:
            raise ConfigError(
                f"calibration limit must be at least 1 image, not {self.calibration_limit}"
            )
        return self

    def check_precision(self, precision: str) -> TrtOptions:
        """These options at an engine precision: DLA cores run FP16 or INT8 only."""
        if precision not in ("fp32", "fp16", "int8"):
            raise ConfigError(f"precision must be fp32, fp16 or int8, not {precision!r}")
        if self.dla_core is not None and precision == "fp32":
            raise ConfigError("DLA cores run FP16 or INT8 only: add --precision fp16 or int8")
        return self.validate()


ALL_OPTIONS: tuple[type[EngineOptions], ...] = (OrtOptions, TfOptions, TrtOptions)

OptionsArg = EngineOptions | Iterable[EngineOptions] | None
"""What ``backends.create`` takes: one engine's options, one per engine, or none."""


def pick(kind: type[Opt], given: OptionsArg = None) -> Opt:
    """The options of one engine among ``given`` (each engine takes its own, so ``auto``
    can be handed ONNX Runtime's and TensorRT's at once), else its defaults."""
    items: list[EngineOptions]
    if given is None:
        items = []
    elif isinstance(given, EngineOptions):
        items = [given]
    else:
        items = list(given)
    for item in items:
        if not isinstance(item, EngineOptions):
            raise ConfigError(
                f"engine options must be OrtOptions, TfOptions or TrtOptions, not {item!r}"
            )
    mine = [item for item in items if isinstance(item, kind)]
    if len(mine) > 1:
        raise ConfigError(f"{kind.__name__} given {len(mine)} times")
    chosen = mine[0] if mine else kind()
    return chosen.validate()
