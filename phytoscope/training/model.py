"""The network: Keras MobileNetV2 (alpha = 1.0, the study's architecture) and a logits head.

Backbone weights come only from a local file (``weights=None`` is always passed to Keras, so
nothing is ever fetched from the network). A full Keras model file (``.h5`` or ``.keras``)
whose MobileNetV2 sub-model was trained at another input size is accepted: convolution
weights do not depend on the input size, so each layer's variables are copied by layer name
and variable name, and every backbone layer must be found or the load is refused.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from phytoscope.errors import ModelError

log = logging.getLogger(__name__)

ALPHA = 1.0


def build_backbone(size: int) -> Any:
    """MobileNetV2 without its ImageNet head, global-average pooled: (N, 1280) features."""
    import keras

    return keras.applications.MobileNetV2(
        input_shape=(size, size, 3), alpha=ALPHA, include_top=False, weights=None, pooling="avg"
    )


def _find_layer_group(h5: Any, layer_name: str) -> Any:
    """The HDF5 group holding a layer's variables, wherever the saving model nested it."""
    found: list[Any] = []

    def visit(name: str, obj: Any) -> None:
        if not found and name.rsplit("/", 1)[-1] == layer_name and hasattr(obj, "keys"):
            found.append(obj)

    root = h5["model_weights"] if "model_weights" in h5 else h5
    root.visititems(visit)
    return found[0] if found else None


def load_backbone_weights(backbone: Any, path: Path) -> int:
    """Copy the weights of a MobileNetV2 saved in an HDF5 file into ``backbone``.

    Returns the number of variables set. Raises :class:`ModelError` if a layer or variable
    is missing or has another shape (e.g. a different alpha).
    """
    import h5py
    import numpy as np

    path = Path(path)
    if not path.exists():
        raise ModelError(f"backbone weights {path} do not exist")
    count = 0
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise ModelError(f"cannot read backbone weights {path} (HDF5 .h5 expected): {exc}") from exc
    with h5:
        for layer in backbone.layers:
            if not layer.weights:
                continue
            group = _find_layer_group(h5, layer.name)
            if group is None:
                raise ModelError(f"{path.name} has no weights for backbone layer {layer.name!r}")
            values = []
            for variable in layer.weights:
                key = variable.name.rsplit("/", 1)[-1].split(":")[0]
                if key not in group:
                    raise ModelError(f"{path.name}: layer {layer.name} lacks variable {key!r}")
                value = np.asarray(group[key])
                if tuple(value.shape) != tuple(variable.shape):
                    raise ModelError(
                        f"{path.name}: {layer.name}/{key} has shape {value.shape}, the backbone "
                        f"expects {tuple(variable.shape)} (is it MobileNetV2 alpha={ALPHA}?)"
                    )
                values.append(value)
            layer.set_weights(values)
            count += len(values)
    log.info("loaded %d backbone variables from %s", count, path)
    return count


def build_classifier(
    backbone: Any, num_classes: int, dropout: float = 0.2, frozen_statistics: bool = True
) -> Any:
    """Backbone + dropout + Dense logits (no softmax: post-processing is shared code).

    With pre-trained weights (``frozen_statistics``) the backbone is called with
    ``training=False`` so its batch-norm statistics stay those of the pre-trained weights
    while fine-tuning on a few thousand images (Keras' transfer learning guide does the
    same). A randomly initialised backbone needs its statistics learned, so it is not.
    """
    import keras

    size = backbone.input_shape[1]
    inputs = keras.Input((size, size, 3), name="input")
    features = backbone(inputs, training=False) if frozen_statistics else backbone(inputs)
    x = keras.layers.Dropout(dropout, name="dropout")(features)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name="phytoscope_genus")


def build_head(num_features: int, num_classes: int, dropout: float = 0.2) -> Any:
    """The same head on pre-computed features (frozen-backbone stage)."""
    import keras

    inputs = keras.Input((num_features,), name="features")
    x = keras.layers.Dropout(dropout, name="dropout")(inputs)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name="head")


def set_trainable_from(
    backbone: Any, first_layer: str | None, freeze_batch_norm: bool = True
) -> int:
    """Freeze the backbone below ``first_layer`` (None: train all); return trainable layers.

    Batch-norm layers stay frozen (``freeze_batch_norm``): with small, imbalanced batches
    their statistics would drift away from what the pre-trained convolutions expect.
    """
    import keras

    backbone.trainable = True
    trainable = first_layer is None
    n = 0
    for layer in backbone.layers:
        if first_layer is not None and layer.name.startswith(first_layer):
            trainable = True
        is_bn = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = trainable and not (freeze_batch_norm and is_bn)
        n += int(layer.trainable and bool(layer.weights))
    return n
