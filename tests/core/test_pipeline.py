"""classify_items: same answers as the plain classifier, order, progress, cancel, errors.

Runs a tiny real Keras->ONNX model through ONNX Runtime (tests/conftest.py), never a mock,
both ways the engine is called: from the calling thread only, and from two engine threads
at once ("lanes", what core.pipeline.engine_options gives ONNX Runtime on a CPU).
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from phytoscope import backends
from phytoscope.backends.options import OrtOptions
from phytoscope.core.classifier import Classifier
from phytoscope.core.pipeline import classify_items
from phytoscope.errors import Cancelled
from phytoscope.progress import CancelToken, Progress
from phytoscope.sources import iter_inputs
from phytoscope.types import Roi, Skipped

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module", params=[1, 2], ids=["caller-only", "two-lanes"])
def classifier(tiny_model_dir, request):
    backend = backends.create(
        "onnxruntime", model=tiny_model_dir, options=OrtOptions(lanes=request.param, threads=1)
    ).load()
    assert backend.concurrent_calls == request.param
    yield Classifier(backend)
    backend.close()


def no_pipeline_threads_left() -> bool:
    names = ("phytoscope-reader", "phytoscope-prep", "phytoscope-infer")
    return not any(t.name.startswith(names) and t.is_alive() for t in threading.enumerate())


@pytest.fixture(scope="module")
def rois() -> list[Roi]:
    """37 real ROIs (IFCB bins + images), so batches of 16 leave a remainder."""
    items = list(iter_inputs([DATA / "ifcb", DATA / "images"]))
    real = [i for i in items if isinstance(i, Roi)]
    out = []
    while len(out) < 37:
        out.extend(Roi(r.source, len(out), r.image) for r in real)
    return out[:37]


def collect(gen):
    predictions, skipped = [], []
    for p, s in gen:
        predictions.extend(p)
        skipped.extend(s)
    return predictions, skipped


@pytest.mark.parametrize("batch_size", [1, 16, 64])
def test_same_predictions_as_direct_classifier(classifier, rois, batch_size):
    expected = classifier.predict(rois)
    got, skipped = collect(classify_items(iter(rois), classifier, batch_size=batch_size))
    assert skipped == []
    assert [(p.source, p.roi_index, p.label) for p in got] == [
        (p.source, p.roi_index, p.label) for p in expected
    ]
    np.testing.assert_allclose(
        [p.confidence for p in got], [p.confidence for p in expected], rtol=1e-5
    )


def test_skipped_pass_through_in_order_and_progress_counts_all(classifier, rois):
    items = [Skipped("a.png", "bad"), *rois[:20], Skipped("b.png", "bad"), *rois[20:]]
    calls: list[tuple[int, int | None]] = []
    batches = list(
        classify_items(
            items,
            classifier,
            batch_size=16,
            progress=Progress(lambda e: calls.append((e.done, e.total))),
        )
    )
    assert [s.source for _, ss in batches for s in ss] == ["a.png", "b.png"]
    assert sum(len(p) for p, _ in batches) == len(rois)
    assert calls[-1] == (len(items), len(items))  # a list has a length: total is known
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_unknown_total_for_a_generator(classifier, rois):
    calls = []
    progress = Progress(lambda e: calls.append(e.total))
    collect(classify_items((r for r in rois), classifier, progress=progress))
    assert set(calls) == {None}


def test_bad_roi_is_skipped_not_the_batch(classifier, rois):
    broken = Roi("broken.png", 0, np.zeros((0, 5), np.uint8))
    got, skipped = collect(classify_items([rois[0], broken, rois[1]], classifier))
    assert [p.roi_index for p in got] == [rois[0].index, rois[1].index]
    assert len(skipped) == 1 and skipped[0].source == "broken.png#0"


def test_cancel_keeps_batches_already_yielded(classifier, rois):
    cancel = CancelToken()
    seen = []
    with pytest.raises(Cancelled):
        for predictions, _ in classify_items(
            iter(rois * 5), classifier, batch_size=8, progress=Progress(cancel=cancel)
        ):
            seen.extend(predictions)
            cancel.set()
    assert len(seen) == 8


def test_engine_error_reaches_the_caller_and_stops_the_run(classifier, rois):
    """An inference failure (in an engine lane or the calling thread) is raised to the
    caller in input order, after the batches before it; no thread is left running."""

    class FailingThird(Classifier):
        def predict_tensor(self, batch, rois):
            if rois[0].index >= 16:
                raise RuntimeError("engine fault")
            return super().predict_tensor(batch, rois)

    seen = []
    with pytest.raises(RuntimeError, match="engine fault"):
        for predictions, _ in classify_items(
            iter(rois), FailingThird(classifier.backend), batch_size=8
        ):
            seen.extend(predictions)
    assert [p.roi_index for p in seen] == list(range(16))
    assert no_pipeline_threads_left()


def test_reader_error_reaches_the_caller(classifier, rois):
    def items():
        yield from rois[:3]
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError, match="disk gone"):
        collect(classify_items(items(), classifier, batch_size=2))


def test_stopping_early_stops_the_reader_thread(classifier, rois):
    gen = classify_items(iter(rois * 50), classifier, batch_size=4, prefetch=1)
    next(gen)
    gen.close()
    assert no_pipeline_threads_left()


def test_whole_frame_through_the_pipeline(classifier, tmp_path):
    notes = DATA / "frame" / "Pn_delicatissima_20230523_0035_14_half.jpg"
    big = cv2.resize(cv2.imread(str(notes)), None, fx=2, fy=2)  # camera resolution again
    path = tmp_path / "frame.png"
    cv2.imwrite(str(path), big)
    got, skipped = collect(classify_items(iter_inputs([path]), classifier))
    assert len(got) > 3 and skipped == []
    assert all(p.box is not None for p in got)


def test_parallel_decoding_matches_serial_order(classifier, tmp_path):
    """iter_inputs offers units(): files are decoded in a pool, results stay in input order."""
    import shutil

    for i in range(12):
        for name in ("smhi_cryptomonadales.png", "pn_delicatissima_crop.jpg", "pwssc_blob.png"):
            shutil.copyfile(DATA / "images" / name, tmp_path / f"{i:02d}_{name}")
    shutil.copyfile(DATA / "images" / "corrupt.png", tmp_path / "05_zz_corrupt.png")
    for suffix in (".adc", ".hdr", ".roi"):
        shutil.copyfile(
            DATA / "ifcb" / ("IFCB5_2012_028_081515" + suffix),
            tmp_path / ("IFCB5_2012_028_081515" + suffix),
        )
    stream = iter_inputs([tmp_path])
    assert callable(getattr(stream, "units", None))
    parallel, parallel_skipped = collect(
        classify_items(stream, classifier, batch_size=5, workers=3)
    )
    serial, serial_skipped = collect(
        classify_items(iter(list(iter_inputs([tmp_path]))), classifier, batch_size=5)
    )
    assert [(p.source, p.roi_index, p.label) for p in parallel] == [
        (p.source, p.roi_index, p.label) for p in serial
    ]
    assert len(parallel) == 36 + 6
    assert (
        [s.source for s in parallel_skipped]
        == [s.source for s in serial_skipped]
        == [str(tmp_path / "05_zz_corrupt.png")]
    )


def test_parallel_cancel_and_early_stop(classifier, tmp_path):
    import shutil

    for i in range(40):
        shutil.copyfile(DATA / "images" / "pwssc_blob.png", tmp_path / f"{i:02d}.png")
    cancel = CancelToken()
    seen = []
    with pytest.raises(Cancelled):
        for predictions, _ in classify_items(
            iter_inputs([tmp_path]), classifier, batch_size=4, progress=Progress(cancel=cancel)
        ):
            seen.extend(predictions)
            cancel.set()
    assert len(seen) == 4
    gen = classify_items(iter_inputs([tmp_path]), classifier, batch_size=4, prefetch=1)
    next(gen)
    gen.close()
    assert no_pipeline_threads_left()


def test_opencv_runs_single_threaded_only_while_a_pipeline_runs(classifier, rois):
    """Decoding is parallel per file already; OpenCV's own threads would compete with the
    engine. The process-wide setting comes back when the last pipeline ends."""
    before = cv2.getNumThreads()
    seen = []
    for _ in classify_items(iter(rois), classifier, batch_size=8):
        seen.append(cv2.getNumThreads())
    assert seen and set(seen) == {1}
    assert cv2.getNumThreads() == before


def test_engine_options_share_the_cpus_as_lanes(monkeypatch):
    from phytoscope.core.pipeline import MAX_LANES, engine_options

    monkeypatch.delenv("PHYTOSCOPE_THREADS", raising=False)
    monkeypatch.delenv("PHYTOSCOPE_ORT_SPIN", raising=False)
    assert engine_options(cpus=2) == OrtOptions(spin=False, lanes=2, threads=1)
    assert engine_options(cpus=1) == OrtOptions(spin=False, lanes=1, threads=1)
    assert engine_options(cpus=16) == OrtOptions(
        spin=False, lanes=MAX_LANES, threads=16 // MAX_LANES
    )
    monkeypatch.setenv("PHYTOSCOPE_THREADS", "4")  # the user's one run with 4 threads wins
    monkeypatch.setenv("PHYTOSCOPE_ORT_SPIN", "1")
    assert engine_options(cpus=16) == OrtOptions()
    assert (OrtOptions().intra_op_threads, OrtOptions().spinning) == (4, True)


def test_lanes_only_once_loaded_and_on_the_cpu(tiny_model_dir):
    backend = backends.create(
        "onnxruntime", model=tiny_model_dir, options=OrtOptions(lanes=3, threads=1)
    )
    assert backend.concurrent_calls == 1  # not loaded: nobody may call it
    with backend:
        assert backend.concurrent_calls == 3
        assert backend.describe()["concurrent_calls"] == 3
    assert backend.concurrent_calls == 1
