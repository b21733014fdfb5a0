"""Augmentation that suits microscope images, applied to prepared uint8 (N, H, W) arrays.

A plankton cell has no "up" under a microscope, so flips and 90-degree rotations are free
new views; magnification and illumination vary a little between sessions and instruments,
so the scale and brightness changes stay small. Working on the cached uint8 arrays (before
:func:`phytoscope.imaging.preprocess.normalise`) keeps one pre-processing implementation.
"""

from __future__ import annotations

import cv2
import numpy as np

from phytoscope.imaging.preprocess import border_value


def _rescale(image: np.ndarray, factor: float) -> np.ndarray:
    """Zoom in (crop the centre) or out (pad with the background) keeping the size."""
    h, w = image.shape
    new_h, new_w = max(1, round(h * factor)), max(1, round(w * factor))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    if factor >= 1.0:
        top, left = (new_h - h) // 2, (new_w - w) // 2
        return resized[top : top + h, left : left + w]
    canvas = np.full((h, w), border_value(image), dtype=np.uint8)
    top, left = (h - new_h) // 2, (w - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = resized
    return canvas


def augment_one(
    image: np.ndarray,
    rng: np.random.Generator,
    scale: float = 0.1,
    brightness: float = 0.1,
) -> np.ndarray:
    """One random view: flip, 90-degree rotation, scale in [1-scale, 1+scale], brightness
    and contrast within +-``brightness``."""
    out = image
    if rng.random() < 0.5:
        out = out[:, ::-1]
    if out.shape[0] == out.shape[1]:
        out = np.rot90(out, int(rng.integers(4)))
    elif rng.random() < 0.5:
        out = out[::-1, :]
    out = np.ascontiguousarray(out)
    if scale > 0:
        out = _rescale(out, float(rng.uniform(1 - scale, 1 + scale)))
    if brightness > 0:
        gain = rng.uniform(1 - brightness, 1 + brightness)
        shift = rng.uniform(-brightness, brightness) * 255 * 0.5
        out = np.clip(out.astype(np.float32) * gain + shift, 0, 255).astype(np.uint8)
    return out


def augment_batch(images: np.ndarray, rng: np.random.Generator, **kwargs: float) -> np.ndarray:
    """A random view of each image of a uint8 (N, H, W) batch."""
    return (
        np.stack([augment_one(im, rng, **kwargs) for im in images])
        if len(images)
        else images.copy()
    )


def instrument_view(
    image: np.ndarray,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.6, 1.4),
    blur: float = 2.0,
    noise: float = 10.0,
    invert: float = 0.25,
) -> np.ndarray:
    """A view of a prepared grey image as another instrument could have taken it.

    Each class of the training data comes from one instrument, so background brightness,
    contrast, sharpness, noise and magnification are shortcuts to the label; randomising
    them (on top of the geometric views of :func:`augment_one`) makes those cues useless.
    ``invert`` is the chance of swapping light and dark (brightfield vs darkfield). Grey
    conversion needs no step here: the prepared arrays are already grey (card rule grey3).
    """
    out = augment_one(image, rng, scale=0.0, brightness=0.0)
    out = _rescale(out, float(np.exp(rng.uniform(np.log(scale[0]), np.log(scale[1])))))
    data = out.astype(np.float32)
    background = float(border_value(out))
    if rng.random() < invert:
        data, background = 255.0 - data, 255.0 - background
    # contrast about the background, then move the background to a new level
    data = (data - background) * rng.uniform(0.5, 1.5) + rng.uniform(20, 235)
    sigma = rng.uniform(0, blur)
    if sigma > 0.3:
        data = np.asarray(cv2.GaussianBlur(data, (0, 0), sigma), np.float32)
    if noise > 0:
        data = data + rng.normal(0, rng.uniform(0, noise), data.shape).astype(np.float32)
    return np.clip(data, 0, 255).astype(np.uint8)


def instrument_batch(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An :func:`instrument_view` of each image of a uint8 (N, H, W) batch."""
    return np.stack([instrument_view(im, rng) for im in images]) if len(images) else images.copy()
