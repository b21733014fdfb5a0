"""Settings dialog (saved through :class:`phytoscope.config.Settings`); About/doctor is
:class:`phytoscope.gui.about.AboutDialog`."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from phytoscope.config import BACKEND_CHOICES, PRECISION_CHOICES, Settings
from phytoscope.core import hab
from phytoscope.errors import ConfigError
from phytoscope.gui.about import unknown_rules

__all__ = ["SettingsDialog", "rule_set_titles"]


def rule_set_titles(names: list[str]) -> dict[str, str]:
    """Code name -> the programme's own title (``resources/rules/rule_sets.csv``)."""
    titles = {}
    for name in names:
        try:
            titles[name] = hab.load_rule_set(name).title
        except ConfigError:  # a broken overrides file: still selectable by its code
            titles[name] = name
    return titles


class SettingsDialog(QDialog):
    """Backend, model, rule set, thresholds, camera, sampling rate.

    Per-class confidence thresholds live in the model card (they were chosen on the
    validation set when the model was trained); they are shown here, read-only, so a
    technician can see why an organism became "unknown".
    """

    def __init__(
        self,
        settings: Settings,
        rule_sets: list[str],
        card: Any = None,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.setWindowTitle("phytoscope settings")
        self.backend = QComboBox()
        self.backend.addItems(list(BACKEND_CHOICES))
        self.backend.setCurrentText(settings.backend)
        self.precision = QComboBox()
        self.precision.addItems(list(PRECISION_CHOICES))
        self.precision.setCurrentText(settings.precision)
        self.model_dir = QLineEdit(settings.model_dir)
        self.model_dir.setPlaceholderText("installed model folder (default)")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model_dir, 1)
        model_row.addWidget(browse)
        self.recent = QPushButton("Recent")  # models used before (e.g. before a learn)
        recent_menu = QMenu(self.recent)
        for model in settings.recent_models:
            act = recent_menu.addAction(model or "installed model (default)")
            act.setData(model)
        recent_menu.triggered.connect(lambda act: self.model_dir.setText(str(act.data() or "")))
        self.recent.setMenu(recent_menu)
        self.recent.setEnabled(bool(settings.recent_models))
        model_row.addWidget(self.recent)
        self.rule_set = QComboBox()
        self.rule_set.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        for code, title in rule_set_titles(rule_sets or [settings.rule_set]).items():
            self.rule_set.addItem(title, code)
            self.rule_set.setItemData(self.rule_set.count() - 1, code, Qt.ItemDataRole.ToolTipRole)
        self.select_rule_set(settings.rule_set)
        self.camera = QLineEdit(settings.camera)
        self.camera.setToolTip(
            "A device number (0 = /dev/video0) or a GStreamer pipeline ending in appsink, e.g.\n"
            "nvarguscamerasrc ! video/x-raw(memory:NVMM) ! nvvidconv ! video/x-raw,format=BGRx ! "
            "videoconvert ! video/x-raw,format=BGR ! appsink"
        )
        self.telemetry_hz = QDoubleSpinBox()
        self.telemetry_hz.setRange(0.1, 100.0)
        self.telemetry_hz.setDecimals(1)
        self.telemetry_hz.setSuffix(" Hz")
        self.telemetry_hz.setValue(settings.telemetry_hz)
        self.batch_size = QSpinBox()
        self.batch_size.setRange(1, 1024)
        self.batch_size.setValue(settings.batch_size)
        thresholds = QLabel(self._thresholds_text(card))
        thresholds.setWordWrap(True)
        thresholds.setStyleSheet("color: #555")
        self.error = QLabel()
        self.error.setStyleSheet("color: #c92a2a")

        form = QFormLayout()
        form.addRow("Inference backend", self.backend)
        form.addRow("Precision", self.precision)
        form.addRow("Model folder or card", model_row)
        form.addRow("HAB rule set", self.rule_set)
        form.addRow("Class thresholds", thresholds)
        form.addRow("Camera", self.camera)
        form.addRow("Telemetry sampling", self.telemetry_hz)
        form.addRow("Batch size", self.batch_size)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self._base = settings
        self.result_settings: Settings | None = None

    @staticmethod
    def _thresholds_text(card: Any) -> str:
        if card is None:
            return "no model loaded"
        return "\n".join(value for _name, value in unknown_rules(card))

    def select_rule_set(self, code: str) -> None:
        index = self.rule_set.findData(code)
        if index >= 0:
            self.rule_set.setCurrentIndex(index)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Model folder", self.model_dir.text())
        if folder:
            self.model_dir.setText(folder)

    def values(self) -> Settings:
        model = self.model_dir.text().strip()
        base = self._base if model == self._base.model_dir else self._base.with_model(model)
        return replace(
            base,
            backend=self.backend.currentText(),
            precision=self.precision.currentText(),
            rule_set=str(self.rule_set.currentData() or self.rule_set.currentText()),
            camera=self.camera.text().strip(),
            telemetry_hz=float(self.telemetry_hz.value()),
            batch_size=int(self.batch_size.value()),
        )

    def accept(self) -> None:
        try:
            self.result_settings = self.values().validate()
        except ConfigError as exc:
            self.error.setText(str(exc))
            return
        super().accept()
