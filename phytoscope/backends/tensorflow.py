"""TensorFlow/Keras: the study's "base model" (a .keras file or a SavedModel folder)."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np

from phytoscope.backends.base import LOGITS, Backend
from phytoscope.backends.options import TfOptions


class TensorFlowBackend(Backend):
    name = "tensorflow"
    model_format = "keras"
    install_hint = (
        "pip install 'phytoscope[tensorflow]' (tensorflow-cpu on x86-64, tensorflow on Jetson)"
    )
    options_type = TfOptions

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if importlib.util.find_spec("tensorflow") is None:
            return f"TensorFlow is not installed; {cls.install_hint}"
        return None

    def _load_impl(self) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras

        path = self.card.model_path
        if path.is_dir():  # SavedModel: keep the serving signature, no Python class needed
            import tensorflow as tf

            loaded = tf.saved_model.load(str(path))
            self._model = loaded
            self._fn = loaded.signatures["serving_default"]
            self._saved_model = True
            spec = list(self._fn.structured_input_signature[1].values())[0]
            input_shape = tuple(spec.shape)
            shapes = {k: tuple(v.shape) for k, v in self._fn.structured_outputs.items()}
        else:
            self._model = keras.models.load_model(path, compile=False)
            self._saved_model = False
            input_shape = tuple(self._model.input_shape)
            shapes = self._output_shapes()
        logits = shapes.get(LOGITS) or next(iter(shapes.values()))
        self.card.check_io_shapes(input_shape, logits[-1])

    def _output_shapes(self) -> dict[str, tuple[int | None, ...]]:
        """Output name -> shape of the Keras model (one output: named ``logits``)."""
        shape = self._model.output_shape
        if isinstance(shape, dict):
            return {k: tuple(v) for k, v in shape.items()}
        if isinstance(shape, list):
            return dict(zip(self._model.output_names, map(tuple, shape), strict=True))
        return {LOGITS: tuple(shape)}

    def _infer_impl(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        if self._saved_model:
            return {k: v.numpy() for k, v in self._fn(batch).items()}
        out = self._model(batch, training=False)
        if isinstance(out, dict):
            return {k: np.asarray(v) for k, v in out.items()}
        if isinstance(out, (list, tuple)):
            return dict(zip(self._model.output_names, map(np.asarray, out), strict=True))
        return {LOGITS: np.asarray(out)}

    def _close_impl(self) -> None:
        del self._model
        import keras

        keras.backend.clear_session()

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        try:
            import tensorflow as tf

            info["version"] = tf.__version__
        except ImportError:
            pass
        return info
