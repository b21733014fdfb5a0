"""The inference worker's job functions without Qt: the camera path end to end with a
fake camera (frames through the core segmentation and the real ONNX backend), and a
results store that fails mid-run."""

from __future__ import annotations

import numpy as np

from phytoscope import backends
from phytoscope.core.classifier import Classifier
from phytoscope.errors import StorageError
from phytoscope.gui import analysis
from phytoscope.gui.camera import CameraCapture
from phytoscope.gui.jobs import CancelToken, FilesJob
from phytoscope.imaging.decode import read_image
from phytoscope.storage import Store
from tests.conftest import DATA

FRAME = DATA / "frame" / "Pn_delicatissima_20230523_0035_14_half.jpg"


class FrameCamera:
    """OpenCV's capture interface over one real microscope frame, ``n`` times, then gone."""

    def __init__(self, n: int):
        self.image = np.ascontiguousarray(read_image(FRAME)[0][:, :, ::-1])  # as OpenCV: BGR
        self.left = n

    def isOpened(self) -> bool:  # noqa: N802
        return True

    def read(self):
        if self.left <= 0:
            return False, None
        self.left -= 1
        return True, self.image.copy()

    def release(self) -> None:
        pass


def test_camera_frames_are_segmented_and_classified(tiny_model_dir, tmp_path):
    batches, progress = [], []
    with backends.create("onnxruntime", model=tiny_model_dir / "tiny.onnx.json") as backend:
        capture = CameraCapture(FrameCamera(3), max_failures=1).start()
        frames: dict = {}
        try:
            result = analysis.classify_stream(
                1,
                analysis.camera_rois(
                    capture.mailbox, CancelToken(), analysis.frame_segmenter(), frames
                ),
                Classifier(backend),
                None,
                None,
                batches.append,
                progress.append,
                CancelToken(),
                batch_size=4,
                frame_of=lambda roi: frames.get(roi.source),
                dropped=lambda: capture.mailbox.dropped,
            )
        finally:
            capture.stop()
    predictions = [p for b in batches for p in b.predictions]
    assert result.predictions == len(predictions) > 0
    # every organism is a segment of a camera frame, boxed inside it
    assert all(p.source.startswith("camera:") and p.box is not None for p in predictions)
    h, w = read_image(FRAME)[0].shape[:2]
    assert all(0 <= p.box[0] < w and 0 <= p.box[1] < h for p in predictions)
    # the frames come with the batches for drawing, shrunk with their scale
    shown = [
        (key, scale)
        for b in batches
        for (key, _), scale in zip(b.frames, b.frame_scales, strict=True)
    ]
    assert shown and all(key.startswith("camera:") and 0 < scale <= 1 for key, scale in shown)
    # frames delivered = taken + dropped (+ at most one left in the slot)
    box = capture.mailbox
    assert box.delivered - box.taken - box.dropped in (0, 1)
    assert progress[-1].dropped == box.dropped


class FailingStore:
    """A store whose disk fills after the first batch (what a full SD card does)."""

    def __init__(self, path):
        self.store = Store(path)
        self.calls = 0

    def add_predictions(self, run_id, predictions):
        self.calls += 1
        if self.calls > 1:
            raise StorageError("database or disk is full")
        self.store.add_predictions(run_id, predictions)

    def add_skipped(self, run_id, skipped):
        self.store.add_skipped(run_id, skipped)


def test_a_full_disk_stops_the_analysis_as_it_stops_the_command(tiny_model_dir, tmp_path):
    """One rule for both front ends (#16.7): a store that fails stops the run; what was
    classified is still shown, and the message says which run and how many rows are safe."""
    store = FailingStore(tmp_path / "r.sqlite")
    run_id = store.store.start_run("onnxruntime", "tiny", "0" * 64)
    batches = []
    with backends.create("onnxruntime", model=tiny_model_dir / "tiny.onnx.json") as backend:
        result = analysis.run_files(
            FilesJob(1, (str(DATA / "ifcb"),)),
            Classifier(backend),
            store,
            run_id,
            batches.append,
            lambda p: None,
            CancelToken(),
            batch_size=2,
        )
    shown = sum(len(b.predictions) for b in batches)
    assert result.predictions == shown == 4  # the stored batch and the refused one
    assert "disk is full" in result.error and f"run {run_id}: 2 rows stored" in result.error
    assert len(store.store.predictions(run_id)) == 2  # the first batch was kept on disk
    assert all(b.analysis is not None for b in batches)  # the core batch reaches the window
    store.store.close()


def test_the_window_decodes_files_in_parallel_like_the_cli():
    """The GUI's pass-through keeps ``units()``, so ``classify_items`` decodes whole files
    in its pool for the window as it does for ``phytoscope classify``."""
    from phytoscope.sources import iter_inputs
    from phytoscope.types import Roi

    tap = analysis._Tap(iter_inputs([str(DATA / "ifcb")]), analysis.default_frame_of)
    items = [item for unit in tap.units() for item in unit()]
    rois = [i for i in items if isinstance(i, Roi)]
    assert rois and all((r.source, r.index) in tap.thumbs for r in rois)
    plain = analysis._Tap(iter([]), analysis.default_frame_of)
    assert not hasattr(plain, "units")  # a plain iterator is read one by one
