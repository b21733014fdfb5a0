"""Frame recall and false HAB share of the shipped model at other novelty thresholds.

A diagnosis for models/evaluation/frames/README.md, not a way to choose the threshold (that
belongs to validation data and the held-out-class figures). Run from the repository root:

    python models/evaluation/frames/threshold_sweep.py ../shared/data [0.22 0.24 ...]

Prints one line per subset (test, val) and threshold, segmentation with merged boxes.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from phytoscope import backends
from phytoscope.core.classifier import Classifier
from phytoscope.imaging.segment import SegmentParams
from phytoscope.training import dataset as ds
from phytoscope.training import frames as fr
from phytoscope.training import frames_eval as fe

THRESHOLDS = (0.22, 0.24, 0.26, 0.28, 0.30, 0.33)


def main(data: Path, thresholds: tuple[float, ...]) -> None:
    marzi = data / "images" / "marzi_pseudo_nitzschia"
    split = ds.read_split(Path("models/genus_split.csv"), data)
    annotations = fr.read_annotations(marzi / "coco_labels")
    with backends.create("onnxruntime", "fp32", model=Path("models/genus.onnx.json")) as engine:
        classifier = Classifier(engine)
        card = classifier.card
        assert card.novelty is not None, "the model has no novelty output"
        print(f"card threshold {card.novelty.threshold:.4f}")
        for subset in ("test", "val"):
            frames = fe.held_out_frames(marzi / "full_frames", split, subset)
            for t in thresholds:
                classifier.card = dataclasses.replace(
                    card, novelty=dataclasses.replace(card.novelty, threshold=t)
                )
                result = fe.evaluate_frames(
                    frames, annotations, classifier, {"merged": SegmentParams()}
                )
                total = result["merged"]["total"]
                print(
                    f"{subset} ({len(frames)} frames) threshold {t:.2f}: recall "
                    f"{total['cells_called']}/{total['cells']}, false HAB "
                    f"{total['non_cell_hab']}/{total['non_cell']} "
                    f"({total['false_hab_share']:.1%})"
                )


if __name__ == "__main__":
    main(Path(sys.argv[1]), tuple(float(v) for v in sys.argv[2:]) or THRESHOLDS)
