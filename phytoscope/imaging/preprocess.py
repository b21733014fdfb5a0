"""Turn any image a source produces into the network's input tensor, as the model card says.

Training, every backend, the benchmark and the GUI call these functions, so what the model
saw while learning is exactly what it sees in the field.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from phytoscope.modelcard import InputSpec


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Bring 16-bit (or float) pixels to 8 bits.

    Scientific cameras often store 10-14 bit data in 16-bit files, so dividing by 257 would
    leave a dark image; stretch between the 0.1 and 99.9 percentiles instead.
    """
    if image.dtype == np.uint8:
        return image
    data = image.astype(np.float32)
    lo, hi = np.percentile(data, (0.1, 99.9))
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((data - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)


def to_grey(image: np.ndarray) -> np.ndarray:
    """Grey-scale uint8 (H, W) from grey, RGB or RGBA pixels (RGB order, as sources give)."""
    image = to_uint8(image)
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_RGBA2GRAY)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    raise ValueError(f"unsupported image shape {image.shape}")


def border_value(grey: np.ndarray) -> int:
    """Median of the outermost pixels: the background, dark (darkfield) or light (brightfield)."""
    edge = np.concatenate([grey[0, :], grey[-1, :], grey[:, 0], grey[:, -1]])
    return int(np.median(edge))


def letterbox(grey: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize keeping the aspect ratio, padding with the background value."""
    h, w = grey.shape[:2]
    if h == 0 or w == 0:
        raise ValueError("empty image")
    scale = min(height / h, width / w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(grey, (new_w, new_h), interpolation=interpolation)
    canvas = np.full((height, width), border_value(grey), dtype=np.uint8)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = resized
    return canvas


def prepare_uint8(image: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Grey, resized, padded uint8 (H, W): the compact form training caches to memory."""
    if spec.colour != "grey3":
        raise ValueError(f"colour handling {spec.colour!r} is not supported")
    grey = to_grey(image)
    if spec.resize == "letterbox":
        return letterbox(grey, spec.height, spec.width)
    if spec.resize == "stretch":
        return cv2.resize(grey, (spec.width, spec.height), interpolation=cv2.INTER_AREA)
    raise ValueError(f"resize mode {spec.resize!r} is not supported")


def normalise(prepared: np.ndarray, spec: InputSpec) -> np.ndarray:
    """uint8 (..., H, W) grey -> float32 tensor in the card's layout, channels repeated."""
    data = prepared.astype(np.float32) * np.float32(spec.scale) + np.float32(spec.offset)
    data = np.repeat(data[..., np.newaxis], spec.channels, axis=-1)
    if spec.layout == "NCHW":
        data = np.moveaxis(data, -1, -3)
    return np.ascontiguousarray(data)


def preprocess(image: np.ndarray, spec: InputSpec) -> np.ndarray:
    """One image -> float32 (H, W, C) (or (C, H, W)) ready to batch."""
    return normalise(prepare_uint8(image, spec), spec)


def preprocess_batch(images: Sequence[np.ndarray], spec: InputSpec) -> np.ndarray:
    """Several images -> one float32 batch tensor."""
    if not images:
        return np.zeros(spec.batch_shape(0), dtype=np.float32)
    return normalise(np.stack([prepare_uint8(im, spec) for im in images]), spec)
