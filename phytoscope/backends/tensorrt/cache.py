"""The engine cache: serialised engines on disk under the key they are valid for.

Cache layout (one folder, default ``config.cache_dir()/engines``)::

    <model>-<sha256[:12]>-<precision>-b<batch>[-dla<N>].engine   serialised engine
    <same>.engine.json                                           sidecar: the full EngineKey
    timing-trt<version>-<gpu>.cache                              TensorRT timing cache
    calib-<sha256[:12]>-<images digest>.cache                    INT8 calibration cache

The engine's file name leaves out the TensorRT version and the GPU on purpose: after a
JetPack upgrade, or a cache folder copied from another machine, the same file is found, its
sidecar disagrees with this machine, and the engine is rebuilt in place with a logged
message (instead of stale engines piling up, or a cryptic deserialisation error).
Pure Python: unit-tested on machines without TensorRT.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from phytoscope.config import cache_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineKey:
    """What an engine is only valid for. Any difference means rebuild."""

    model_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    batch: int
    dla_core: int | None = None

    def differences(self, other: dict[str, Any]) -> list[str]:
        """Human-readable fields in which a sidecar's key differs from this one."""
        out = []
        for name, value in asdict(self).items():
            theirs = other.get(name, "<missing>")
            if theirs != value:
                out.append(f"{name.replace('_', ' ')} {theirs} -> {value}")
        return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


def engine_file_name(card_name: str, key: EngineKey) -> str:
    dla = f"-dla{key.dla_core}" if key.dla_core is not None else ""
    return f"{_slug(card_name)}-{key.model_sha256[:12]}-{key.precision}-b{key.batch}{dla}.engine"


def writable_dir(path: Path) -> bool:
    """True when files can be created in ``path`` (created if missing)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError:
        return False
    return True


def atomic_write(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a crash never leaves half an engine."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class CachedEngine:
    path: Path
    sidecar: dict[str, Any]


class EngineCache:
    """Engines on disk under their :class:`EngineKey`, with a user-cache fallback.

    ``directory`` is where engines should go (``--cache-dir``); when it cannot be written
    (a read-only install folder, a path under a file) the user cache
    ``config.cache_dir()/engines`` is used instead, with a warning, and lookups search both
    so the engine built there is found at the next start.
    """

    def __init__(self, directory: Path | str | None = None, fallback: Path | None = None):
        self.fallback = Path(fallback) if fallback else cache_dir() / "engines"
        self.requested = Path(directory) if directory else self.fallback
        self._write_dir: Path | None = None
        self._resolved = False

    @property
    def search_dirs(self) -> list[Path]:
        dirs = [self.requested]
        if self.fallback != self.requested:
            dirs.append(self.fallback)
        return dirs

    @property
    def write_dir(self) -> Path | None:
        """The folder new files go to, or None when neither folder can be written."""
        if not self._resolved:
            self._resolved = True
            for candidate in self.search_dirs:
                if writable_dir(candidate):
                    if candidate != self.requested:
                        log.warning(
                            "TensorRT engine cache %s cannot be written; using %s instead",
                            self.requested,
                            candidate,
                        )
                    self._write_dir = candidate
                    break
            else:
                log.warning(
                    "neither %s nor %s can be written: TensorRT engines will not be cached and "
                    "will be rebuilt at every start; fix the permissions or pass --cache-dir",
                    self.requested,
                    self.fallback,
                )
        return self._write_dir

    def lookup(self, card_name: str, key: EngineKey) -> CachedEngine | None:
        """The cached engine for ``key``, or None (with the reason logged) to rebuild."""
        name = engine_file_name(card_name, key)
        for folder in self.search_dirs:
            engine = folder / name
            if not engine.is_file():
                continue
            sidecar_path = engine.with_name(engine.name + ".json")
            try:
                sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
                stored_key = sidecar["key"]
                if not isinstance(stored_key, dict):
                    raise TypeError("key is not an object")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning(
                    "cached TensorRT engine %s has no readable sidecar (%s): it may come from "
                    "another machine; rebuilding",
                    engine,
                    exc,
                )
                continue
            diffs = key.differences(stored_key)
            if diffs:
                log.warning(
                    "cached TensorRT engine %s was built for a different setup (%s); rebuilding",
                    engine,
                    "; ".join(diffs),
                )
                continue
            return CachedEngine(engine, sidecar)
        return None

    def store(self, card_name: str, key: EngineKey, engine: bytes, **extra: Any) -> Path | None:
        """Write an engine and its sidecar; None (logged) when nothing can be written."""
        folder = self.write_dir
        if folder is None:
            return None
        path = folder / engine_file_name(card_name, key)
        sidecar = {
            "key": asdict(key),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "size_bytes": len(engine),
            **extra,
        }
        try:
            atomic_write(path, engine)
            atomic_write(
                path.with_name(path.name + ".json"), (json.dumps(sidecar, indent=2) + "\n").encode()
            )
        except OSError as exc:
            log.warning(
                "could not write TensorRT engine %s (%s); it will be rebuilt next time", path, exc
            )
            return None
        return path

    def discard(self, path: Path) -> None:
        """Remove an engine that failed to deserialise (and its sidecar)."""
        for victim in (path, path.with_name(path.name + ".json")):
            try:
                victim.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("could not remove stale engine file %s: %s", victim, exc)

    def timing_cache_path(self, tensorrt_version: str, gpu_name: str) -> Path | None:
        folder = self.write_dir
        if folder is None:
            return None
        return folder / f"timing-trt{tensorrt_version}-{_slug(gpu_name)}.cache"

    def calibration_cache_path(self, key: EngineKey, images_digest: str) -> Path | None:
        name = f"calib-{key.model_sha256[:12]}-{images_digest[:12]}.cache"
        for folder in self.search_dirs:
            if (folder / name).is_file():
                return folder / name
        target = self.write_dir
        return target / name if target is not None else None

    def entries(self) -> list[dict[str, Any]]:
        """Cached engines (for ``phytoscope info``)."""
        out = []
        for folder in self.search_dirs:
            if not folder.is_dir():
                continue
            for engine in sorted(folder.glob("*.engine")):
                row: dict[str, Any] = {
                    "file": str(engine),
                    "size_mb": round(engine.stat().st_size / 2**20, 1),
                }
                try:
                    sidecar = json.loads(engine.with_name(engine.name + ".json").read_text())
                    key = sidecar["key"]
                    row.update(
                        precision=key["precision"],
                        batch=key["batch"],
                        tensorrt=key["tensorrt_version"],
                        gpu=key["gpu_name"],
                        built_at=sidecar.get("built_at"),
                    )
                except (OSError, ValueError, KeyError, TypeError):
                    row["sidecar"] = "missing or unreadable (will be rebuilt)"
                out.append(row)
        return out
