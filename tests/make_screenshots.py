"""The README's screenshots: the real window on the shipped model, under a real X server.

Run under Xvfb at each screen size, e.g.::

    xvfb-run -s "-screen 0 1366x768x24" python tests/make_screenshots.py 1366x768
    xvfb-run -s "-screen 0 1920x1080x24" python tests/make_screenshots.py 1920x1080

It opens the bundled samples (``resources/samples``: an IFCB bin, a microscope frame and
a few images) with a site typed, so the sample is saved and listed, then saves into
``resources/screenshots``: the analysis page (alerts, sample, charts), the review gallery,
the Samples tab, the benchmark page before a run (its method text) and with the recorded
run of ``results/bench/x86_64-amd-epyc-2cpu/results.json`` loaded, and About (a dialog of
its own size: one file for both screens). The window
fills the screen as a maximised one would. Nothing here is a test; it is kept beside them
because it drives the window as the GUI tests do.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from phytoscope.config import Settings, models_dir  # noqa: E402
from phytoscope.gui.app import make_app  # noqa: E402

VOLUME_ML = 1.0
"""mL of water the bundled images stand for (typed as a technician would)."""


def wait(app, seconds: float, until=None) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end and not (until and until()):
        app.processEvents()
        time.sleep(0.02)


def main(size: str) -> int:
    app = make_app()
    from phytoscope.bench.results import BenchResult
    from phytoscope.gui.main_window import MainWindow

    out = REPO / "resources" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="phytoscope-shots-"))
    settings = Settings(model_dir=str(models_dir()), rule_set="scotland_habreports")
    window = MainWindow(settings, settings_path=tmp / "settings.json", database=tmp / "r.sqlite")
    window.show()
    screen = window.screen().availableGeometry()
    window.setGeometry(screen)  # as maximised (Xvfb has no window manager to do it)

    def shot(name: str, widget=None) -> None:
        wait(app, 0.8)
        path = out / (f"{name}-{size}.png" if widget is None else f"{name}.png")
        (widget or window).grab().save(str(path))
        print("wrote", path)

    wait(app, 60, lambda: window.backend_info is not None or window.no_model_reason)
    if window.backend_info is None:
        print("no model:", window.no_model_reason)
        return 1
    window.sample_panel.site.setText("Loch Creran")
    samples = REPO / "resources" / "samples"
    finished: list = []
    window.analysis_finished.connect(finished.append)
    window.open_paths([str(samples / "ifcb"), str(samples / "frames"), str(samples / "images")])
    wait(app, 300, lambda: bool(finished) and not window._jobs)
    # the images (not a bin) become cells/L once the technician gives their volume and time
    panel = window.sample_panel
    panel.method.setCurrentText("Volume I give")
    panel.given_ml.setValue(VOLUME_ML)
    panel.set_sampled_at("2026-06-01T09:30:00+00:00")
    panel.choice.setCurrentIndex(panel.choice.count() - 1)  # the images' sample
    window.save_sample()
    wait(app, 4)  # a few telemetry readings on the charts (a closed dock: the status bar)
    window.refresh_panels()
    frame = [r for r in window.session.records if "frames" in r.prediction.source]
    if frame:  # the microscope frame with its boxes, rather than the last small image
        window.show_record(frame[0])
    cards = [c for c in window.alert_panel.card_of.values() if c.ack_button.isEnabled()]
    if cards and screen.height() >= 900:  # acknowledging, where the form fits beside it
        cards[0].open_form("J. Smith", "phoned the harvester")
        wait(app, 0.3)
        window.alert_panel.scroller.ensureWidgetVisible(cards[0].headline)
    hint = window.minimumSizeHint()
    print(f"minimum size with the charts dock open: {hint.width()}x{hint.height()}")
    shot("analysis")

    window.lower_tabs.setCurrentWidget(window.gallery)
    window.gallery.refresh(force=True)
    shot("gallery")
    window.lower_tabs.setCurrentWidget(window.predictions_table)

    tab = getattr(window, "samples_tab", None)
    if tab is not None:
        window.tabs.setCurrentWidget(tab)
        tab.refresh()
        if tab.samples.rowCount():
            tab.samples.selectRow(0)
        shot("samples")

    window.tabs.setCurrentWidget(window.bench_page)
    shot("benchmark-before")
    recorded = REPO / "results" / "bench" / "x86_64-amd-epyc-2cpu" / "results.json"
    window.bench_page.show_result(BenchResult.load(recorded))
    shot("benchmark")
    window.tabs.setCurrentWidget(window.analysis_page)

    window.open_about()
    wait(app, 60, lambda: getattr(window, "about_dialog", None) is not None)
    dialog = window.about_dialog
    dialog.resize(min(760, screen.width()), min(700, screen.height() - 40))
    shot("about", dialog)
    dialog.close()
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "1366x768"))
