"""Settings and the places phytoscope reads and writes.

Paths follow the XDG base-directory convention so a .deb install, a pip install and a
source checkout behave alike; each can be overridden by an environment variable, which the
tests use to keep everything under a temporary folder.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from phytoscope.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent
SOURCE_ROOT = PACKAGE_DIR.parent


def _first_existing(*candidates: Path) -> Path | None:
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return None


def models_dir() -> Path:
    """Folder of the shipped model(s).

    Order: ``$PHYTOSCOPE_MODELS``; ``models/`` of a source checkout; the data files of a
    pip or .deb install (``<prefix>/share/phytoscope/models``).
    """
    env = os.environ.get("PHYTOSCOPE_MODELS")
    if env:
        return Path(env)
    found = _first_existing(
        SOURCE_ROOT / "models",
        Path(sys.prefix) / "share" / "phytoscope" / "models",
        Path("/opt/phytoscope/models"),
    )
    return found if found is not None else SOURCE_ROOT / "models"


def resources_dir() -> Path:
    """Folder of rule sets, icons and sample images (same search order as :func:`models_dir`)."""
    env = os.environ.get("PHYTOSCOPE_RESOURCES")
    if env:
        return Path(env)
    found = _first_existing(
        SOURCE_ROOT / "resources",
        Path(sys.prefix) / "share" / "phytoscope" / "resources",
        Path("/opt/phytoscope/resources"),
    )
    return found if found is not None else SOURCE_ROOT / "resources"


def _xdg(var: str, default: str) -> Path:
    return Path(os.environ.get(var) or Path.home() / default) / "phytoscope"


def data_dir() -> Path:
    """User data (results database, corrections): ``$PHYTOSCOPE_DATA`` or XDG data home."""
    env = os.environ.get("PHYTOSCOPE_DATA")
    return Path(env) if env else _xdg("XDG_DATA_HOME", ".local/share")


def cache_dir() -> Path:
    """Rebuildable files (TensorRT engines, timing caches): ``$PHYTOSCOPE_CACHE`` or XDG cache."""
    env = os.environ.get("PHYTOSCOPE_CACHE")
    return Path(env) if env else _xdg("XDG_CACHE_HOME", ".cache")


def config_dir() -> Path:
    env = os.environ.get("PHYTOSCOPE_CONFIG")
    return Path(env) if env else _xdg("XDG_CONFIG_HOME", ".config")


def default_database() -> Path:
    return data_dir() / "results.sqlite"


BACKEND_CHOICES = ("auto", "onnxruntime", "tensorflow", "tensorrt")
PRECISION_CHOICES = ("fp32", "fp16", "int8")


@dataclass
class Settings:
    """What a user can set once and keep between runs (GUI settings dialog, config file)."""

    backend: str = "auto"
    precision: str = "fp32"
    model_dir: str = ""
    rule_set: str = "scotland_habreports"
    camera: str = "0"
    telemetry_hz: float = 2.0
    batch_size: int = 16
    recent_models: list[str] = field(default_factory=list)
    """models used before (newest first; "" = the installed one), offered again in Settings"""

    def with_model(self, model_dir: str, keep: int = 8) -> Settings:
        """These settings running ``model_dir``, the model used until now kept as recent."""
        recent = [self.model_dir, *(m for m in self.recent_models if m != self.model_dir)]
        recent = [m for m in recent if m != model_dir][:keep]
        return replace(self, model_dir=model_dir, recent_models=recent)

    def validate(self) -> Settings:
        if self.backend not in BACKEND_CHOICES:
            raise ConfigError(
                f"backend must be one of {', '.join(BACKEND_CHOICES)}, not {self.backend!r}"
            )
        if self.precision not in PRECISION_CHOICES:
            raise ConfigError(
                f"precision must be one of {', '.join(PRECISION_CHOICES)}, not {self.precision!r}"
            )
        if not 0.1 <= self.telemetry_hz <= 100:
            raise ConfigError(
                f"telemetry rate must be between 0.1 and 100 Hz, not {self.telemetry_hz}"
            )
        if not 1 <= self.batch_size <= 1024:
            raise ConfigError(f"batch size must be between 1 and 1024, not {self.batch_size}")
        return self

    @property
    def resolved_model_dir(self) -> Path:
        return Path(self.model_dir) if self.model_dir else models_dir()

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
        """Read settings; a missing file gives defaults, a broken one a clear error."""
        path = path or config_dir() / "settings.json"
        if not path.exists():
            return cls()
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot read settings {path}: {exc}; delete it to start from defaults"
            ) from exc
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known}).validate()

    def save(self, path: Path | None = None) -> Path:
        path = path or config_dir() / "settings.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)  # atomic: a crash never leaves half a settings file
        return path
