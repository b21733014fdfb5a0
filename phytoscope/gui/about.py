"""About / doctor as a page a person reads: sections, words, no JSON and no nulls.

Built from :func:`phytoscope.core.diagnostics.collect` (the same facts ``phytoscope info``
prints) plus what is in use in the window: the model card, its "unknown" rules with the
thresholds at full precision, and the HAB rule set by its human name. *Copy as text* puts
the same page, as plain text, on the clipboard for a bug report.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from phytoscope.gui.wording import threshold_percent

Section = tuple[str, list[tuple[str, str]]]
"""(title, [(name, value)]) — one block of the page; a name of "" is a sentence."""

SECTION_TITLES = {
    "backends": "Inference engines",
    "packages": "Python packages",
    "paths": "Folders",
    "models": "Models found",
    "telemetry": "Power and memory sensors",
    "tensorrt": "TensorRT (NVIDIA)",
}


def _words(value: Any, missing: str) -> str:
    """A value in words: None is ``missing`` ("not installed", "not found")."""
    if value is None or value == "":
        return missing
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {_words(v, missing)}" for k, v in value.items())
    if isinstance(value, Sequence) and not isinstance(value, str):
        return ", ".join(_words(v, missing) for v in value) or "none"
    return str(value)


def unknown_rules(card: Any) -> list[tuple[str, str]]:
    """When an organism of this model becomes "unknown", with every threshold written at
    the precision it has (98.3 %, never a rounded 98 % that a 98.2 % organism seems to pass)."""
    lines: list[tuple[str, str]] = []
    novelty = getattr(card, "novelty", None)
    if novelty is not None:
        chosen = f" ({novelty.chosen})" if novelty.chosen else ""
        frames = (
            f" ({novelty.frame_threshold:.6g} for organisms cut out of whole frames)"
            if novelty.frame_threshold is not None
            else ""
        )
        lines.append(
            (
                "Unlike every trained class",
                f"'unknown' when the {novelty.method} novelty score is above "
                f"{novelty.threshold:.6g}{frames}{chosen}",
            )
        )
    limits = [(c.name, c.threshold) for c in card.classes if c.threshold > 0]
    for name, threshold in limits:
        lines.append(
            ("Too uncertain", f"'unknown' below {threshold_percent(threshold)} for {name}")
        )
    if not limits:
        lines.append(("Too uncertain", "no class has a confidence threshold"))
    else:
        others = len(card.classes) - len(limits)
        if others:
            lines.append(
                ("", f"The other {others} classes keep their best guess at any confidence.")
            )
    return lines


def sections(
    info: Mapping[str, Any], rule_set: Any = None, card: Any = None, engine: str = ""
) -> list[Section]:
    """The page's blocks, in reading order."""
    out: list[Section] = []
    in_use: list[tuple[str, str]] = []
    if card is not None:
        in_use.append(("Model", card.label))
        in_use.append(("Classes", ", ".join(card.class_names)))
    else:
        in_use.append(("Model", "none loaded"))
    if engine:
        in_use.append(("Engine", engine))
    if rule_set is not None:
        in_use.append(("HAB rule set", rule_set.title))
        in_use.append(("Rule-set version", rule_set.version))
        if rule_set.overridden:
            in_use.append(("Changed by this site", ", ".join(rule_set.overridden)))
    else:
        in_use.append(("HAB rule set", "none (alerts are off)"))
    out.append(("In use now", in_use))
    if card is not None:
        out.append(("When an organism is 'unknown'", unknown_rules(card)))
    out.append(
        (
            "This computer",
            [
                ("phytoscope", _words(info.get("phytoscope"), "not found")),
                ("Python", _words(info.get("python"), "not found")),
                ("System", _words(info.get("platform"), "not found")),
                ("Processor", _words(info.get("machine"), "not found")),
            ],
        )
    )
    for key in ("backends", "models", "telemetry", "tensorrt", "packages", "paths"):
        if key not in info:
            continue
        value = info[key]
        missing = "not installed" if key == "packages" else "not found"
        title = SECTION_TITLES[key]
        if key == "models":
            out.append((title, _models(value)))
        elif isinstance(value, Mapping):
            out.append((title, [(str(k), _words(v, missing)) for k, v in value.items()]))
        else:
            out.append((title, [("", _words(value, missing))]))
    known = {"phytoscope", "python", "platform", "machine", *SECTION_TITLES}
    for key, value in info.items():  # a section another part of phytoscope registered
        if key not in known:
            rows = (
                [(str(k), _words(v, "not found")) for k, v in value.items()]
                if isinstance(value, Mapping)
                else [("", _words(value, "not found"))]
            )
            out.append((key.replace("_", " ").capitalize(), rows))
    return out


def _models(value: Any) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [("", value)]
    rows = []
    for model in value or ():
        accuracy = model.get("accuracy")
        parts = [
            f"{len(model.get('classes', ()))} classes",
            f"input {model.get('input', '?')}",
            f"top-1 {accuracy:.1%} on its test set" if isinstance(accuracy, float) else "",
            str(model.get("card", "")),
        ]
        rows.append((str(model.get("label", "?")), " · ".join(p for p in parts if p)))
    return rows or [("", "no model installed")]


def as_text(blocks: list[Section]) -> str:
    lines = []
    for title, rows in blocks:
        lines += [title, "-" * len(title)]
        lines += [f"{name}: {value}" if name else value for name, value in rows]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def as_html(blocks: list[Section]) -> str:
    parts = []
    for title, rows in blocks:
        parts.append(
            f"<h3 style='margin-bottom:2px'>{html.escape(title)}</h3><table cellpadding='2'>"
        )
        for name, value in rows:
            if name:
                parts.append(
                    f"<tr><td valign='top' style='color:#495057; padding-right:12px'>"
                    f"{html.escape(name)}</td><td>{html.escape(value)}</td></tr>"
                )
            else:
                parts.append(f"<tr><td colspan='2'>{html.escape(value)}</td></tr>")
        parts.append("</table>")
    return "".join(parts)


class AboutDialog(QDialog):
    """``phytoscope info`` as a readable page, with *Copy as text* for bug reports."""

    def __init__(
        self,
        info: Mapping[str, Any],
        parent: QWidget | None = None,
        rule_set: Any = None,
        card: Any = None,
        engine: str = "",
    ):
        super().__init__(parent)
        from phytoscope import __version__

        self.setWindowTitle("About phytoscope")
        self.resize(720, 600)
        self.blocks = sections(info, rule_set, card, engine)
        intro = (
            f"<h2>phytoscope {html.escape(__version__)}</h2>"
            "<p>Harmful algal bloom analyser: plankton identified by genus, cells per litre "
            "with 95 % intervals, and HAB alerts against published thresholds; with "
            "performance-per-watt benchmarking. <i>Copy as text</i> puts this page on the "
            "clipboard for a bug report.</p>"
        )
        self.page = QTextBrowser()
        self.page.setOpenExternalLinks(False)
        self.page.setHtml(intro + as_html(self.blocks))
        self.copy_button = QPushButton("Copy as text")
        self.copy_button.clicked.connect(self.copy)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.ActionRole)
        layout = QVBoxLayout(self)
        layout.addWidget(self.page, 1)
        layout.addWidget(buttons)

    def plain_text(self) -> str:
        """The page as plain text (what *Copy as text* copies)."""
        from phytoscope import __version__

        return f"phytoscope {__version__}\n\n" + as_text(self.blocks)

    def copy(self) -> None:
        QApplication.clipboard().setText(self.plain_text())
        self.copy_button.setText("Copied")
