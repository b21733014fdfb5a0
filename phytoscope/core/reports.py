"""A stored sample as report files: the CSV table, the HTML page and the PDF.

``phytoscope report`` and the window write the same files through these functions.

The CSV follows the England & Wales (FSA/Cefas) downloads: one row per sample, one column
per taxon in cells/L (chains/L for chain-forming genera, said in the header), ``ND`` when
nothing was found; it is written with the csv module. The HTML page is self-contained (one
file to e-mail): sample facts, the alert table with evidence and versions, every taxon's
level, the rule-set taxa this model cannot see, and a few ROI thumbnails per flagged taxon,
embedded as base64 PNG while the source files are still readable. It is rendered from the
Jinja2 template ``phytoscope/templates/report.html.j2`` with autoescape on, so a site name
or a file name can never inject markup. The PDF carries the same content, drawn with
matplotlib (optional).

The ROI pixels come back through :func:`read_rois`, which re-reads the sources through the
same readers as classification (the EcoTaxa export uses it too).
"""

from __future__ import annotations

import base64
import csv
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import jinja2
import numpy as np

from phytoscope.core.sample import CHAINS, MANUAL, describe_volume, format_per_l
from phytoscope.core.sample_text import (
    stored_closest_hab,
    stored_concentrations,
    stored_manual,
    stored_unidentified,
)
from phytoscope.core.unidentified import describe_unidentified
from phytoscope.errors import ConfigError
from phytoscope.imaging.preprocess import to_uint8
from phytoscope.sources import iter_inputs
from phytoscope.types import Roi

THUMBNAILS_PER_TAXON = 6
THUMBNAIL_PX = 128

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("phytoscope", "templates"),
    autoescape=True,  # the template is .html.j2: select_autoescape would not match it
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)
_ENV.filters["per_l"] = format_per_l


# -- concentrations from the store -----------------------------------------------------


def csv_rows(store: Any, sample_ids: Sequence[int]) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of the England & Wales style table."""
    fixed = [
        "sample_id", "site", "sampled_at", "analysed_at", "ml_analyzed",
        "detection_limit_cells_per_l", "unknown_rois", "model", "rule_set", "open_alerts",
        "flags", "revision",
    ]  # fmt: skip
    taxa: dict[str, str] = {}
    rows = []
    for sid in sample_ids:
        sample = store.sample(sid)
        alerts = [a for a in store.alerts(sid) if a.open]
        row = {
            "sample_id": str(sid),
            "site": sample.site,
            "sampled_at": sample.sampled_at or "",
            "analysed_at": sample.created_at or "",
            "ml_analyzed": f"{sample.volume.ml_analyzed:.4g}",
            "detection_limit_cells_per_l": f"{1000.0 / sample.volume.ml_analyzed:.0f}",
            "unknown_rois": str(sum(stored_unidentified(store, sid).values())),
            "model": sample.model,
            "rule_set": sample.rule_set,
            "open_alerts": "; ".join(
                f"{a.taxon} {'at least ' if a.lower_bound else ''}{a.level}"
                + (" (manual)" if a.model == MANUAL else "")
                for a in alerts
            ),
            # "partial": a bin read only in part, its volume scaled (warnings say how)
            "flags": ";".join(sample.flags),
            "revision": str(sample.revision),
        }
        for c in stored_concentrations(store, sid):
            column = c.taxon + (" (chains/L)" if c.unit == CHAINS else "")
            taxa.setdefault(c.taxon, column)
            row[column] = f"{c.per_l:.0f}" if c.detected else "ND"
        for m, c in stored_manual(store, sid):  # a microscopist's count, over its own volume
            column = f"{m.taxon} (manual)"
            taxa.setdefault(column, column)
            row[column] = f"{c.per_l:.0f}" if c.detected else "ND"
        rows.append(row)
    return fixed + list(taxa.values()), rows


def write_csv(store: Any, sample_ids: Sequence[int], path: Path) -> Path:
    header, rows = csv_rows(store, sample_ids)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=header, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


# -- ROI pixels and thumbnails -------------------------------------------------------------


def read_rois(
    refs: Iterable[tuple[str, int]], segment: str = "auto"
) -> Iterator[tuple[str, int, np.ndarray | None]]:
    """(source, roi index, pixels or None) for every (source, index) asked for.

    Each source is re-read once, through the same readers as classification, so ROI indices
    mean the same thing (a video frame ``clip.mp4#frame=12`` is sought and segmented
    again); a source that has moved or been deleted gives None instead of failing. Results
    come source by source, in the order sources first appear; the pixels are copies, so a
    crop never keeps its whole camera frame in memory.
    """
    by_source: dict[str, set[int]] = {}
    for source, index in refs:
        by_source.setdefault(source, set()).add(index)
    for source, wanted in by_source.items():
        found: set[int] = set()
        try:
            for item in iter_inputs([source], segment=segment):
                if isinstance(item, Roi) and item.index in wanted and item.index not in found:
                    found.add(item.index)
                    yield source, item.index, np.array(item.image, copy=True)
                    if found == wanted:
                        break
        except Exception:  # noqa: BLE001 - a moved or damaged source is "not readable", no more
            pass
        for index in sorted(wanted - found):
            yield source, index, None


def roi_images(
    evidence: Iterable[tuple[str, int]], limit: int = THUMBNAILS_PER_TAXON, segment: str = "auto"
) -> list[tuple[str, int, Any]]:
    """(source, roi index, pixels or None) for the first ``limit`` evidence ROIs, in order."""
    wanted = list(evidence)[:limit]
    found = {(s, i): img for s, i, img in read_rois(wanted, segment)}
    return [(s, i, found.get((s, i))) for s, i in wanted]


def png_data_uri(image: Any, size: int = THUMBNAIL_PX) -> str:
    """A ROI as an embeddable PNG, at most ``size`` pixels on its longest side."""
    img = to_uint8(np.asarray(image))  # 16-bit cameras: the same stretch the model sees
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)  # sources hand out RGB; PNG encoder wants BGR
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_RGBA2BGRA)
    h, w = img.shape[:2]
    scale = min(1.0, size / max(h, w))
    if scale < 1.0:
        img = cv2.resize(
            img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
        )
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise ValueError("PNG encoding failed")
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def roi_thumbnails(
    evidence: Iterable[tuple[str, int]], limit: int = THUMBNAILS_PER_TAXON, segment: str = "auto"
) -> list[tuple[str, int, str | None]]:
    """(source, roi index, PNG data URI or None): :func:`roi_images` ready for HTML."""
    return [
        (s, i, png_data_uri(img) if img is not None else None)
        for s, i, img in roi_images(evidence, limit, segment)
    ]


# -- HTML --------------------------------------------------------------------------------


def html_report(store: Any, sample_id: int, segment: str = "auto") -> str:
    """The self-contained HTML summary of one sample."""
    f = format_per_l
    sample = store.sample(sample_id)
    summary = store.sample_summary(sample_id)
    alerts = store.alerts(sample_id)
    rule_set = summary.get("rule_set_title", sample.rule_set)
    facts = [
        ("Site", sample.site or "-"),
        ("Sampled at", sample.sampled_at or "not given"),
        ("Analysed at", sample.created_at or "-"),
        ("Revision", f"{sample.revision}" + (f" (updated {sample.updated_at})" if sample.updated_at else "")),
        ("Kind", sample.kind),
        ("Volume", describe_volume(sample.volume)),
        ("Detection limit", f"{f(1000.0 / sample.volume.ml_analyzed)} per L (one organism)"),
        ("Sources", ", ".join(sample.sources) or "-"),
        ("Model", sample.model),
        ("Rule set", f"{rule_set} - version {summary.get('rule_set_version', '?')}"),
        ("Boundary", "a concentration exactly on a threshold is in the upper band"
         if summary.get("boundary", ">=") == ">=" else "a concentration exactly on a threshold stays in the lower band"),
    ]  # fmt: skip
    unidentified = describe_unidentified(
        stored_unidentified(store, sample_id), stored_closest_hab(store, sample_id)
    )
    if unidentified:
        facts.append(("Not identified", unidentified + "; in no concentration and no alert"))
    if sample.flags:
        facts.append(("Flags", ", ".join(sample.flags)))
    facts += [("Warning", w) for w in sample.warnings]
    evidence = [
        (
            a,
            [
                (f"{Path(source).name} #{index}", uri)
                for source, index, uri in roi_thumbnails(a.evidence, segment=segment)
            ],
        )
        for a in alerts
    ]
    return _ENV.get_template("report.html.j2").render(
        sample_id=sample_id,
        sample=sample,
        facts=facts,
        alerts=alerts,
        assessments=summary.get("assessments", []),
        not_monitored=summary.get("not_monitored", []),
        concentrations=stored_concentrations(store, sample_id),
        manual=stored_manual(store, sample_id),
        evidence=evidence,
    )


# -- PDF ---------------------------------------------------------------------------------


def pdf_report(store: Any, sample_id: int, path: Path, segment: str = "auto") -> Path:
    """A printable summary (facts, alert table, levels, thumbnails) drawn with matplotlib.

    Optional: matplotlib is not a core dependency, so a missing one is a clear error naming
    the package; the HTML report carries the same content without it.
    """
    try:
        # Figure + PdfPages, no pyplot: no global backend state, safe from the GUI process too
        from matplotlib.backends.backend_pdf import PdfPages
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ConfigError(
            "PDF reports need matplotlib: pip install matplotlib (or use --format html)"
        ) from exc

    sample = store.sample(sample_id)
    summary = store.sample_summary(sample_id)
    alerts = store.alerts(sample_id)
    f = format_per_l
    facts = [
        f"Site: {sample.site or '-'}    Sampled at: {sample.sampled_at or 'not given'}    Analysed at: {sample.created_at}",
        *(f"Warning: {w}" for w in sample.warnings),
        f"Volume: {describe_volume(sample.volume)}",
        f"Model: {sample.model}    Rule set: {summary.get('rule_set_version', sample.rule_set)}",
    ]  # fmt: skip
    if summary.get("not_monitored"):
        facts.append("Not monitored by this model: " + ", ".join(summary["not_monitored"]))
    unidentified = describe_unidentified(
        stored_unidentified(store, sample_id), stored_closest_hab(store, sample_id)
    )
    if unidentified:
        facts.append(f"Not identified: {unidentified}; in no concentration and no alert")
    facts += [f"Manual: {m.taxon} {c.describe()}" for m, c in stored_manual(store, sample_id)]
    levels = [
        [a["taxon"] + (" (manual)" if a.get("manual") else ""),
         ("at least " if a["lower_bound"] and a["is_alert"] else "") + a["level"],
         f"{f(a['per_l'])} {a['unit']}" if a["count"] else f"ND (< {f(a['detection_limit_per_l'])})",
         f"{f(a['low_per_l'])}-{f(a['high_per_l'])}", str(a["count"]), a["rule_taxon"]]
        for a in summary.get("assessments", [])
    ]  # fmt: skip
    rows = [
        [str(a.id), a.taxon, ("at least " if a.lower_bound else "") + a.level,
         f"{f(a.concentration_per_l)} {a.unit}", f"{f(a.low_per_l)}-{f(a.high_per_l)}",
         f(a.threshold_per_l), a.acknowledged_by or "OPEN"]
        for a in alerts
    ]  # fmt: skip
    with PdfPages(path) as pdf:
        fig = Figure(figsize=(8.27, 11.69))  # A4 portrait
        fig.text(0.05, 0.96, f"Sample {sample_id}", fontsize=16, weight="bold")
        for n, line in enumerate(facts):
            fig.text(0.05, 0.93 - 0.018 * n, line, fontsize=7, wrap=True)
        ax = fig.add_axes((0.05, 0.55, 0.9, 0.28))
        ax.axis("off")
        ax.set_title(f"Alerts ({len(alerts)})", loc="left", fontsize=10)
        if rows:
            table = ax.table(
                cellText=rows, colLabels=["id", "taxon", "level", "concentration", "95 %", "threshold", "ack"],
                loc="upper left", cellLoc="left",
            )  # fmt: skip
            table.auto_set_font_size(False)
            table.set_fontsize(7)
        else:
            ax.text(0, 0.9, "No taxon reached a threshold of this rule set.", fontsize=8)
        ax2 = fig.add_axes((0.05, 0.2, 0.9, 0.3))
        ax2.axis("off")
        ax2.set_title("Monitored taxa", loc="left", fontsize=10)
        if levels:
            t2 = ax2.table(
                cellText=levels, colLabels=["taxon", "level", "concentration", "95 %", "n", "rule"],
                loc="upper left", cellLoc="left",
            )  # fmt: skip
            t2.auto_set_font_size(False)
            t2.set_fontsize(7)
        fig.text(
            0.05, 0.05,
            "Counts are early warnings, not closures. Chains/L underestimate cells: their level is a lower bound.",
            fontsize=7,
        )  # fmt: skip
        pdf.savefig(fig)
        for a in alerts:
            images = [im for _, _, im in roi_images(a.evidence, segment=segment) if im is not None]
            if not images:
                continue
            fig = Figure(figsize=(8.27, 2.5))
            axes = fig.subplots(1, len(images), squeeze=False)
            level = ("at least " if a.lower_bound else "") + a.level
            fig.suptitle(f"Evidence: {a.taxon} ({level})", fontsize=10)
            for axis, im in zip(axes[0], images, strict=True):
                axis.imshow(im, cmap="gray" if im.ndim == 2 else None)
                axis.axis("off")
            pdf.savefig(fig)
    return path


def segment_of_run(store: Any, run_id: int | None) -> str:
    """The ``--segment`` a stored run used, so its ROIs are cut the same way again."""
    if run_id is None:
        return "auto"
    row = store.db.execute("SELECT settings FROM runs WHERE id=?", (run_id,)).fetchone()
    try:
        return str(json.loads(row["settings"]).get("segment", "auto")) if row else "auto"
    except ValueError:
        return "auto"


REPORT_FORMATS = ("html", "pdf", "csv")


def write_report(store: Any, sample_id: int, path: Path, fmt: str) -> Path:
    """One stored sample as one report file (``fmt``: html, pdf or csv); ``phytoscope
    report`` and the window's *Export report…* both write through here. The ROIs are cut
    again as the sample's run cut them."""
    if fmt not in REPORT_FORMATS:
        raise ConfigError(f"a report is html, pdf or csv, not {fmt!r}")
    if fmt == "csv":
        return write_csv(store, [sample_id], path)
    segment = segment_of_run(store, store.sample(sample_id).run_id)
    if fmt == "pdf":
        return pdf_report(store, sample_id, path, segment=segment)
    path.write_text(html_report(store, sample_id, segment=segment), encoding="utf-8")
    return path
