"""*File → Open video…*: a recorded video chosen in the window is read by the camera's
capture code, sampled as asked, segmented, classified and drawn on its frames."""

from __future__ import annotations

from phytoscope.sources.video import VideoSampling, frame_source, split_frame_source
from tests.videos import drifting_frames, write_video


def test_ask_video_returns_the_file_and_the_sampling(qtbot, monkeypatch, tmp_path):
    from PySide6.QtWidgets import QFileDialog, QInputDialog, QWidget

    from phytoscope.gui import video_dialog

    parent = QWidget()
    qtbot.addWidget(parent)
    chosen = str(tmp_path / "slide.avi")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (chosen, ""))
    monkeypatch.setattr(QInputDialog, "getDouble", lambda *a, **k: (2.5, True))
    assert video_dialog.ask_video(parent) == (chosen, VideoSampling(fps=2.5))
    monkeypatch.setattr(QInputDialog, "getDouble", lambda *a, **k: (0.0, True))
    assert video_dialog.ask_video(parent) == (chosen, VideoSampling())  # 0: every frame
    monkeypatch.setattr(QInputDialog, "getDouble", lambda *a, **k: (1.0, False))
    assert video_dialog.ask_video(parent) is None  # cancelled


def test_open_video_classifies_the_sampled_frames(qtbot, monkeypatch, window, tmp_path):
    from phytoscope.gui import video_dialog

    clip = write_video(tmp_path / "slide.avi", drifting_frames(4), fps=2.0)
    monkeypatch.setattr(
        video_dialog, "ask_video", lambda parent: (str(clip), VideoSampling(fps=1.0))
    )
    with qtbot.waitSignal(window.analysis_finished, timeout=120000) as blocker:
        window.act_open_video.trigger()
    result = blocker.args[0]
    assert not result.error and result.predictions == len(window.session.records) > 0
    frames = {split_frame_source(r.prediction.source)[1] for r in window.session.records}
    assert frames == {0, 2}  # 2 frames/s recorded, 1 analysed per second
    assert all(r.prediction.box is not None for r in window.session.records)
    # the boxes are drawn on the frame itself, sought again in the file
    assert frame_source(clip, 0) in window._frames
