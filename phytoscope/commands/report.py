"""``phytoscope report SAMPLE``: a sample's concentrations and HAB alerts as CSV and HTML.

The CSV follows the England & Wales (FSA/Cefas) downloads: one row per sample, one column
per taxon in cells/L (chains/L for chain-forming genera, said in the header), ``ND`` when
nothing was found. The HTML page is self-contained (one file to e-mail): sample facts, the
alert table with evidence and versions, every taxon's level, the rule-set taxa this model
cannot see, and a few ROI thumbnails per flagged taxon, embedded as base64 PNG while the
source files are still readable.

Samples are made by the core session (``phytoscope classify`` with sample options, or the
window); this command reads them back, acknowledges alerts, and writes the reports.
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

HELP = "write a sample's concentrations and HAB alerts as CSV and HTML (--list, --acknowledge)"

THUMBNAILS_PER_TAXON = 6
THUMBNAIL_PX = 128


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "samples", nargs="*", type=int, metavar="SAMPLE", help="sample id(s) in the store"
    )
    parser.add_argument("--db", metavar="PATH", help="results database (default: the user's)")
    parser.add_argument(
        "--out", metavar="DIR", default=".", help="folder for the report files (default .)"
    )
    parser.add_argument(
        "--format",
        default="csv,html",
        help="comma-separated: csv, html, pdf (pdf needs matplotlib; default csv,html)",
    )
    parser.add_argument(
        "--list", action="store_true", help="list the stored samples and open alerts"
    )
    parser.add_argument(
        "--acknowledge", type=int, metavar="ALERT", help="acknowledge an alert by id"
    )
    parser.add_argument("--by", metavar="NAME", help="who acknowledges (with --acknowledge)")
    parser.add_argument("--note", default="", help="note stored with the acknowledgement")


# -- concentrations from the store -----------------------------------------------------


def stored_concentrations(store: Any, sample_id: int) -> list[Any]:
    from phytoscope.core.sample_text import stored_concentrations as of

    return of(store, sample_id)


def csv_rows(store: Any, sample_ids: Sequence[int]) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of the England & Wales style table."""
    from phytoscope.core.sample import CHAINS

    fixed = [
        "sample_id", "site", "sampled_at", "analysed_at", "ml_analyzed",
        "detection_limit_cells_per_l", "unknown_rois", "model", "rule_set", "open_alerts",
        "flags", "revision",
    ]  # fmt: skip
    taxa: dict[str, str] = {}
    rows = []
    for sid in sample_ids:
        sample = store.sample(sid)
        counts = store.sample_counts(sid)
        alerts = [a for a in store.alerts(sid) if a.open]
        row = {
            "sample_id": str(sid),
            "site": sample.site,
            "sampled_at": sample.sampled_at or "",
            "analysed_at": sample.created_at or "",
            "ml_analyzed": f"{sample.volume.ml_analyzed:.4g}",
            "detection_limit_cells_per_l": f"{1000.0 / sample.volume.ml_analyzed:.0f}",
            "unknown_rois": str(counts.get("unknown", (0, ""))[0]),
            "model": sample.model,
            "rule_set": sample.rule_set,
            "open_alerts": "; ".join(
                f"{a.taxon} {'at least ' if a.lower_bound else ''}{a.level}" for a in alerts
            ),
            # "partial": a bin read only in part, its volume scaled (warnings say how)
            "flags": ";".join(sample.flags),
            "revision": str(sample.revision),
        }
        for c in stored_concentrations(store, sid):
            column = c.taxon + (" (chains/L)" if c.unit == CHAINS else "")
            taxa.setdefault(c.taxon, column)
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


# -- thumbnails --------------------------------------------------------------------------


def _png_data_uri(image: Any, size: int = THUMBNAIL_PX) -> str:
    import cv2
    import numpy as np

    from phytoscope.imaging.preprocess import to_uint8

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


def roi_images(
    evidence: Iterable[tuple[str, int]], limit: int = THUMBNAILS_PER_TAXON, segment: str = "auto"
) -> list[tuple[str, int, Any]]:
    """(source, roi index, pixels or None) for the first ``limit`` evidence ROIs.

    Each source is re-read once, through the same readers as classification, so ROI indices
    mean the same thing; a source that has moved or been deleted gives None (the report
    says "not readable") instead of failing.
    """
    from phytoscope.sources import iter_inputs
    from phytoscope.types import Roi

    wanted = list(evidence)[:limit]
    by_source: dict[str, set[int]] = {}
    for source, index in wanted:
        by_source.setdefault(source, set()).add(index)
    found: dict[tuple[str, int], Any] = {}
    for source, indices in by_source.items():
        try:
            for item in iter_inputs([source], segment=segment):
                if isinstance(item, Roi) and item.index in indices:
                    found[(source, item.index)] = item.image
                    if len(found) == len(wanted):
                        break
        except Exception:  # noqa: BLE001 - a thumbnail must never stop a report
            continue
    return [(s, i, found.get((s, i))) for s, i in wanted]


def roi_thumbnails(
    evidence: Iterable[tuple[str, int]], limit: int = THUMBNAILS_PER_TAXON, segment: str = "auto"
) -> list[tuple[str, int, str | None]]:
    """(source, roi index, PNG data URI or None): :func:`roi_images` ready for HTML."""
    return [
        (s, i, _png_data_uri(img) if img is not None else None)
        for s, i, img in roi_images(evidence, limit, segment)
    ]


# -- HTML --------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:4px 8px;text-align:left}
th{background:#eee}.level{font-weight:bold;text-transform:uppercase}
.red{background:#f4b6b6}.orange{background:#f9d3a5}.yellow{background:#fbf3a6}.green{background:#cdeccd}
.high,.moderate_probability{background:#f4b6b6}.medium{background:#f9d3a5}.low,.low_probability{background:#fbf3a6}
.very_low{background:#fdf9d8}figure{display:inline-block;margin:4px;text-align:center;font-size:small}
img{image-rendering:pixelated;border:1px solid #999}.note{color:#555;font-size:small}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _level_cell(level: str, lower_bound: bool, is_alert: bool = True) -> str:
    # chains/L: a level reached is certain ("at least"); one not reached may hide a higher one
    if lower_bound:
        text = f"at least {level}" if is_alert else f"{level} (chains/L: cells may be higher)"
    else:
        text = level
    return f'<td class="level {_e(level)}">{_e(text)}</td>'


def html_report(store: Any, sample_id: int, segment: str = "auto") -> str:
    """The self-contained HTML summary of one sample."""
    from phytoscope.core.sample import describe_volume, format_per_l

    sample = store.sample(sample_id)
    summary = store.sample_summary(sample_id)
    alerts = store.alerts(sample_id)
    concs = stored_concentrations(store, sample_id)
    counts = store.sample_counts(sample_id)
    f = format_per_l
    out: list[str] = [
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>Sample {sample_id} - phytoscope</title>',
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Sample {sample_id}{' - ' + _e(sample.site) if sample.site else ''}</h1>",
        "<table>",
    ]
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
        ("Rule set", f"{summary.get('rule_set_title', sample.rule_set)} - version {summary.get('rule_set_version', '?')}"),
        ("Boundary", "a concentration exactly on a threshold is in the upper band"
         if summary.get("boundary", ">=") == ">=" else "a concentration exactly on a threshold stays in the lower band"),
    ]  # fmt: skip
    if counts.get("unknown", (0, ""))[0]:
        facts.append(
            (
                "Not identified",
                f"{counts['unknown'][0]} organisms: check by microscope (in no alert)",
            )
        )
    if sample.flags:
        facts.append(("Flags", ", ".join(sample.flags)))
    facts += [("Warning", w) for w in sample.warnings]
    out += [f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts]
    out.append("</table>")

    out.append(f"<h2>Alerts ({len(alerts)})</h2>")
    if alerts:
        out.append(
            '<table id="alerts"><tr><th>Alert</th><th>Taxon</th><th>Level</th><th>Concentration</th>'
            "<th>95 % interval</th><th>Count</th><th>Threshold (cells/L)</th><th>Rule</th>"
            "<th>Notes</th><th>Raised</th><th>Acknowledged</th></tr>"
        )
        for a in alerts:
            ack = f"{a.acknowledged_by} at {a.acknowledged_at}" if a.acknowledged_at else "OPEN"
            if a.withdrawn_at:
                ack = f"withdrawn {a.withdrawn_at} (no longer reached)"
            elif a.reopened:
                ack = f"OPEN again: {a.reopened}"
            out.append(
                f"<tr><td>{a.id}</td><td>{_e(a.taxon)}</td>{_level_cell(a.level, a.lower_bound)}"
                f"<td>{_e(f(a.concentration_per_l))} {_e(a.unit)}</td>"
                f"<td>{_e(f(a.low_per_l))}-{_e(f(a.high_per_l))}</td><td>{a.count}</td>"
                f"<td>{_e(f(a.threshold_per_l))}</td><td>{_e(a.rule_taxon)} ({_e(a.syndrome)})</td>"
                f"<td>{_e('; '.join(a.flags))}</td><td>{_e(a.raised_at)}</td><td>{_e(ack)}</td></tr>"
            )
        out.append("</table>")
        out.append(
            f'<p class="note">Model {_e(alerts[0].model)}; rule set {_e(alerts[0].rule_set_version)}. '
            "Counts are early warnings, not closures: closures follow toxin tests in shellfish flesh. "
            "Chains/L (chain-forming genera counted as one object per chain) underestimate cells, so "
            "their level is a lower bound.</p>"
        )
    else:
        out.append("<p>No taxon reached a threshold of this rule set.</p>")

    out.append("<h2>Monitored taxa</h2><table id=\"levels\"><tr><th>Taxon</th><th>Level</th>"
               "<th>Concentration</th><th>95 % interval</th><th>Count</th><th>Rule</th><th>Next threshold</th>"
               "<th>Notes</th></tr>")  # fmt: skip
    for a in summary.get("assessments", []):
        detected = a["count"] > 0
        value = (
            f"{f(a['per_l'])} {a['unit']}"
            if detected
            else f"ND (&lt; {_e(f(a['detection_limit_per_l']))} {_e(a['unit'])})"
        )
        nxt = f"{a['next_level']} at {f(a['next_threshold_per_l'])}" if a.get("next_level") else "-"
        out.append(
            f"<tr><td>{_e(a['taxon'])}</td>{_level_cell(a['level'], a['lower_bound'], a['is_alert'])}"
            f"<td>{value if not detected else _e(value)}</td><td>{_e(f(a['low_per_l']))}-{_e(f(a['high_per_l']))}</td>"
            f"<td>{a['count']}</td><td>{_e(a['rule_taxon'])} ({_e(a['rank'])})</td><td>{_e(nxt)}</td>"
            f"<td>{_e('; '.join(a['flags']))}</td></tr>"
        )
    out.append("</table>")
    missing = summary.get("not_monitored", [])
    if missing:
        out.append(
            "<p><b>Not monitored by this model</b> (in the rule set, but the model cannot recognise them; "
            "count them by microscope): " + _e(", ".join(missing)) + "</p>"
        )

    out.append('<h2>All classes</h2><table id="concentrations"><tr><th>Class</th><th>Count</th>'
               "<th>Concentration</th><th>95 % interval</th></tr>")  # fmt: skip
    for c in concs:
        value = (
            f"{f(c.per_l)} {c.unit}"
            if c.detected
            else f"ND (< {f(c.detection_limit_per_l)} {c.unit})"
        )
        out.append(
            f"<tr><td>{_e(c.taxon)}</td><td>{c.count}</td><td>{_e(value)}</td>"
            f"<td>{_e(f(c.low_per_l))}-{_e(f(c.high_per_l))}</td></tr>"
        )
    out.append("</table>")

    if alerts:
        out.append("<h2>Evidence</h2>")
        for a in alerts:
            out.append(f'<h3>{_e(a.taxon)} ({_e(a.level)})</h3><div class="thumbs">')
            for source, index, uri in roi_thumbnails(a.evidence, segment=segment):
                label = f"{Path(source).name} #{index}"
                body = f'<img src="{uri}" alt="{_e(label)}">' if uri else "<i>not readable</i>"
                out.append(f"<figure>{body}<figcaption>{_e(label)}</figcaption></figure>")
            out.append("</div>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def pdf_report(store: Any, sample_id: int, path: Path, segment: str = "auto") -> Path:
    """A printable summary (facts, alert table, levels, thumbnails) drawn with matplotlib.

    Optional: matplotlib is not a core dependency, so a missing one is a clear error naming
    the package; the HTML report carries the same content without it.
    """
    from phytoscope.core.sample import describe_volume, format_per_l
    from phytoscope.errors import ConfigError

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
    levels = [
        [a["taxon"], ("at least " if a["lower_bound"] and a["is_alert"] else "") + a["level"],
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


def _segment_of_run(store: Any, run_id: int | None) -> str:
    if run_id is None:
        return "auto"
    row = store.db.execute("SELECT settings FROM runs WHERE id=?", (run_id,)).fetchone()
    try:
        return str(json.loads(row["settings"]).get("segment", "auto")) if row else "auto"
    except ValueError:
        return "auto"


# -- command ------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    from phytoscope.config import default_database
    from phytoscope.core.hab import describe_alert
    from phytoscope.core.sample_text import overview
    from phytoscope.errors import ConfigError, ExitCode
    from phytoscope.storage import Store

    formats = {f.strip().lower() for f in args.format.split(",") if f.strip()}
    if not formats <= {"csv", "html", "pdf"}:
        raise ConfigError(f"--format takes csv, html and/or pdf, not {args.format!r}")
    db = Path(args.db) if args.db else default_database()
    if not db.exists():
        raise ConfigError(
            f"no results database at {db}: classify with --db and --site/--sample-volume first"
        )
    with Store(db) as store:
        if args.acknowledge is not None:
            if not args.by:
                raise ConfigError("--acknowledge needs --by NAME (who acknowledges the alert)")
            alert = store.acknowledge(args.acknowledge, args.by, note=args.note)
            from phytoscope.core.sample import format_per_l as f

            print(f"alert {alert.id} acknowledged by {alert.acknowledged_by} at {alert.acknowledged_at}"
                  f" ({alert.level} at {f(alert.concentration_per_l)} {alert.unit}; a later change"
                  " of the sample re-opens it)")  # fmt: skip
            if not args.samples and not args.list:
                return ExitCode.OK
        if args.list or not args.samples:
            print(overview(store))
            return ExitCode.OK
        for sid in args.samples:
            store.sample(sid)  # a clear error before any file is written
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        if "csv" in formats:
            name = f"sample-{args.samples[0]}.csv" if len(args.samples) == 1 else (
                f"samples-{args.samples[0]}-{args.samples[-1]}.csv")  # fmt: skip
            written.append(write_csv(store, args.samples, out / name))
        if "html" in formats:
            for sid in args.samples:
                page = html_report(
                    store, sid, segment=_segment_of_run(store, store.sample(sid).run_id)
                )
                path = out / f"sample-{sid}.html"
                path.write_text(page, encoding="utf-8")
                written.append(path)
        if "pdf" in formats:
            for sid in args.samples:
                path = out / f"sample-{sid}.pdf"
                pdf_report(
                    store, sid, path, segment=_segment_of_run(store, store.sample(sid).run_id)
                )
                written.append(path)
        for sid in args.samples:
            alerts = store.alerts(sid)
            print(f"sample {sid}: {len(alerts)} alert(s)")
            for a in alerts:
                state = "open" if a.open else f"acknowledged by {a.acknowledged_by}"
                if a.withdrawn_at:
                    state = "withdrawn: no longer reached"
                elif a.reopened:
                    state = f"open again: {a.reopened}"
                print(f"  [{a.id}] {describe_alert(a)} ({state})")
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return ExitCode.OK
