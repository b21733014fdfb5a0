"""Label corrections: stored in the results database, exported as a training folder (no Qt).

A correction keeps the ROI's pixels (PNG, longest side <= 128 px, the model's input size)
so the export works even after the source files were moved or deleted. The export is the
folder layout ``phytoscope train`` reads: one sub-folder per class, one PNG per organism.
When an organism was corrected twice, the latest correction wins.
"""

from __future__ import annotations

import getpass
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from phytoscope.errors import StorageError


@dataclass(frozen=True)
class Correction:
    source: str
    roi_index: int
    predicted: str
    confidence: float
    corrected: str
    model: str = ""
    run_id: int | None = None
    who: str = ""
    id: int | None = None
    created_at: str | None = None


def encode_png(image: np.ndarray | None) -> bytes | None:
    if image is None:
        return None
    import cv2

    data = np.ascontiguousarray(image)
    if data.ndim == 3 and data.shape[2] == 3:
        data = data[:, :, ::-1]  # RGB -> OpenCV's BGR
    ok, buf = cv2.imencode(".png", data)
    return bytes(buf) if ok else None


def current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        return ""


def add_correction(store: Any, c: Correction, image: np.ndarray | None) -> int:
    from phytoscope.storage.store import utc_now

    with store.transaction() as db:
        cur = db.execute(
            "INSERT INTO corrections(created_at, source, roi_index, predicted, confidence, corrected,"
            " model, run_id, who, image_png) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                utc_now(),
                c.source,
                c.roi_index,
                c.predicted,
                c.confidence,
                c.corrected,
                c.model,
                c.run_id,
                c.who or current_user(),
                encode_png(image),
            ),
        )
    return int(cur.lastrowid or 0)


def list_corrections(store: Any) -> list[Correction]:
    rows = store.db.execute("SELECT * FROM corrections ORDER BY id").fetchall()
    return [
        Correction(
            r["source"],
            r["roi_index"],
            r["predicted"],
            r["confidence"],
            r["corrected"],
            r["model"],
            r["run_id"],
            r["who"],
            r["id"],
            r["created_at"],
        )
        for r in rows
    ]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "x"


def export_training_folder(store: Any, folder: Path) -> dict[str, int]:
    """Write every corrected organism as ``folder/<class>/<source>_<roi>.png``.

    Returns images written per class. Raises :class:`StorageError` when the folder cannot
    be written (permissions, disk full).
    """
    rows = store.db.execute(
        "SELECT source, roi_index, corrected, image_png FROM corrections"
        " WHERE id IN (SELECT MAX(id) FROM corrections GROUP BY source, roi_index) ORDER BY id"
    ).fetchall()
    written: dict[str, int] = {}
    try:
        for r in rows:
            if r["image_png"] is None:
                continue
            target = folder / _safe(r["corrected"])
            target.mkdir(parents=True, exist_ok=True)
            stem = _safe(Path(str(r["source"])).name)
            (target / f"{stem}_{int(r['roi_index']):05d}.png").write_bytes(bytes(r["image_png"]))
            written[r["corrected"]] = written.get(r["corrected"], 0) + 1
    except OSError as exc:
        raise StorageError(
            f"cannot write the training folder {folder}: {exc.strerror or exc}"
        ) from exc
    return written
