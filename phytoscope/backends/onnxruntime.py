"""ONNX Runtime: the CPU engine that must always work (the package's core dependency)."""

from __future__ import annotations

from typing import Any

import numpy as np

from phytoscope.backends.base import LOGITS, Backend, output_key
from phytoscope.backends.options import OrtOptions


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    model_format = "onnx"
    install_hint = "pip install onnxruntime"
    precisions = ("fp32", "int8")
    options_type = OrtOptions
    options: OrtOptions

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            return f"onnxruntime is not installed ({exc}); {cls.install_hint}"
        return None

    def _load_impl(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.options.intra_op_threads  # 0: one per core
        if not self.options.spinning:
            # ONNX Runtime's pool busy-waits between operators by default; in a pipeline that
            # steals the cores decoding threads need (see core.pipeline.engine_options)
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        available = ort.get_available_providers()
        wanted = list(self.options.providers)
        providers = [p for p in wanted if p in available] or ["CPUExecutionProvider"]
        self._session = ort.InferenceSession(
            str(self.card.model_path), sess_options=options, providers=providers
        )
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        self._input_name = inputs[0].name
        self._output_names = [o.name for o in outputs]
        logits = next((o for o in outputs if output_key(o.name) == LOGITS), outputs[0])
        self.card.check_io_shapes(tuple(inputs[0].shape), logits.shape[-1])
        # InferenceSession.run is thread-safe; concurrent runs pay off on the CPU only
        on_cpu = self._session.get_providers() == ["CPUExecutionProvider"]
        self._lanes = self.options.lanes if on_cpu else 1

    @property
    def concurrent_calls(self) -> int:
        """``lanes`` runs at once (see core.pipeline.engine_options), on the CPU provider."""
        return self._lanes if self.loaded else 1

    def _infer_impl(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        arrays = self._session.run(self._output_names, {self._input_name: batch})
        return dict(zip(self._output_names, arrays, strict=True))

    def _close_impl(self) -> None:
        del self._session

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        try:
            import onnxruntime as ort

            info["version"] = ort.__version__
            info["providers"] = ort.get_available_providers()
            if self.loaded:
                info["providers_used"] = self._session.get_providers()
                info["intra_op_threads"] = self._session.get_session_options().intra_op_num_threads
                info["concurrent_calls"] = self.concurrent_calls
        except ImportError:
            pass
        return info
