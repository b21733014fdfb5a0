"""Choosing the input size by measurement: validation accuracy against CPU latency."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from phytoscope.training.train import Progress, TrainConfig, train

log = logging.getLogger(__name__)


def compare_sizes(
    config: TrainConfig,
    sizes: tuple[int, ...] = (96, 128, 160),
    progress: Progress | None = None,
    repeats: int = 5,
) -> list[dict[str, Any]]:
    """Accuracy against speed per input size, to choose the shipped size by measurement.

    For each size: the frozen-backbone stage only (same split, same seed; fine-tuning is too
    slow to repeat per size on two cores), its validation top-1, and the ONNX Runtime CPU
    latency of the whole network at batch 1 and 16 (median of ``repeats`` timed runs after a
    warm-up). Test images are not touched, so the choice cannot leak into the reported
    test accuracy.
    """
    import tempfile

    import onnxruntime as ort

    results = []
    for size in sizes:
        run = TrainConfig(
            **{
                **asdict(config),
                "size": size,
                "fine_tune_epochs": 0,
                "resume": False,
                "out_dir": Path(config.out_dir) / f"size_{size}",
            }
        )
        result = train(run, progress)
        head_val = max(h["val_top1"] for h in result.history if h["stage"] == "head")
        timing: dict[str, float] = {}
        with tempfile.TemporaryDirectory() as tmp:
            import keras

            model = keras.models.load_model(result.model_path, compile=False)
            model(np.zeros((1, size, size, 3), np.float32))
            onnx_path = Path(tmp) / "m.onnx"
            model.export(str(onnx_path), format="onnx", verbose=False)
            options = ort.SessionOptions()
            options.log_severity_level = 3
            session = ort.InferenceSession(
                str(onnx_path), options, providers=["CPUExecutionProvider"]
            )
            name = session.get_inputs()[0].name
            for batch in (1, 16):
                x = (
                    np.random.default_rng(0)
                    .uniform(-1, 1, (batch, size, size, 3))
                    .astype(np.float32)
                )
                session.run(None, {name: x})
                times = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    session.run(None, {name: x})
                    times.append(time.perf_counter() - t0)
                timing[f"ms_per_image_batch{batch}"] = round(
                    1000 * float(np.median(times)) / batch, 2
                )
        results.append(
            {
                "size": size,
                "val_top1_frozen_backbone": round(head_val, 4),
                **timing,
                "seconds_to_train_head": round(result.seconds, 1),
            }
        )
        log.info("size %d: %s", size, results[-1])
    return results
