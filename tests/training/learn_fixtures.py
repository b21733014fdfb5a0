"""Base models with an embedding bank and teaching folders for the learn tests (no ../shared).

The pixels are the real plankton crops of ``tests/data/training`` (4 per class), each also
rotated and flipped (the 8 symmetries of a square), so a class has up to 32 distinct real
images: enough for the 5-image floor, the 20-image "rough" line and 5-fold
cross-validation, in milliseconds.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from phytoscope.imaging.preprocess import prepare_uint8
from phytoscope.modelcard import ModelCard, card_path_for
from phytoscope.training import dataset as ds
from phytoscope.training import onnx_head, openset
from tests.data.build_tiny_models import write_tiny_model

TRAINING = Path(__file__).resolve().parents[1] / "data" / "training"
BASE_SOURCES = {"Alpha": "Pseudo-nitzschia", "Beta": "zooplankton", "Gamma": "detritus_other"}
"""The tiny model's classes and the crops standing for them in its bank."""


def variants(source: str, count: int) -> list[np.ndarray]:
    """``count`` images of one fixture class: its crops under the square's symmetries."""
    images = [ds.read_image(p) for p in sorted((TRAINING / source).glob("*.png"))]
    out = []
    for k in range(8):
        for image in images:
            turned = np.rot90(image, k % 4)
            out.append(np.ascontiguousarray(turned[:, ::-1] if k >= 4 else turned))
    if count > len(out):
        raise ValueError(f"{source} gives at most {len(out)} variants")
    return out[:count]


def write_class(folder: Path, source: str, count: int) -> Path:
    """``count`` PNG variants of a fixture class in ``folder`` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(variants(source, count)):
        data = image[:, :, ::-1] if image.ndim == 3 and image.shape[2] == 3 else image
        cv2.imwrite(str(folder / f"{source}_{i:02d}.png"), data)
    return folder


def base_with_bank(folder: Path, per_class: int = 16) -> Path:
    """A phytoscope-written 3-class model: the tiny backbone with an open-set head fitted on
    real crops, and its bank of those crops' embeddings (as ``onnx_head.write_model`` leaves
    every model it writes); returns its ``tiny.onnx``."""
    backbone = write_tiny_model(folder / "backbone")
    card = ModelCard.load(card_path_for(backbone))
    prepared, labels = [], []
    for index, source in enumerate(BASE_SOURCES.values()):
        for image in variants(source, per_class):
            prepared.append(prepare_uint8(image, card.input))
            labels.append(index)
    features = onnx_head.embed(backbone, np.stack(prepared), card.input)
    y = np.array(labels)
    head = openset.fit_head(features, y, card.class_names, per_class=4)
    return onnx_head.write_model(
        backbone, card, head, folder / "model", name="tiny-test", version="0",
        file="tiny.onnx", bank=(features, y),
    )  # fmt: skip
