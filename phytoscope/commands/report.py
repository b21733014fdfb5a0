"""``phytoscope report SAMPLE``: a sample's concentrations and HAB alerts as CSV and HTML.

The CSV follows the England & Wales (FSA/Cefas) downloads: one row per sample, one column
per taxon in cells/L (chains/L for chain-forming genera, said in the header), ``ND`` when
nothing was found. The HTML page is self-contained (one file to e-mail): sample facts, the
alert table with evidence and versions, every taxon's level, the rule-set taxa this model
cannot see, and a few ROI thumbnails per flagged taxon, embedded as base64 PNG while the
source files are still readable.

This module also carries the sample options of ``phytoscope classify``
(:func:`add_sample_arguments`, :func:`summarise_sample`), so a technician can classify,
store the sample and see its alerts in one command.
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
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
    """Concentrations recomputed from the stored counts and volume ("unknown" left out)."""
    from phytoscope.core.sample import CHAINS, concentration

    sample = store.sample(sample_id)
    return [
        concentration(taxon, n, sample.volume, chain_forming=unit == CHAINS)
        for taxon, (n, unit) in store.sample_counts(sample_id).items()
        if taxon != "unknown"
    ]


def csv_rows(store: Any, sample_ids: Sequence[int]) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of the England & Wales style table."""
    from phytoscope.core.sample import CHAINS

    fixed = [
        "sample_id", "site", "sampled_at", "analysed_at", "ml_analyzed",
        "detection_limit_cells_per_l", "unknown_rois", "model", "rule_set", "open_alerts",
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
                "Unclassified ROIs",
                f"{counts['unknown'][0]} (below the model's confidence threshold)",
            )
        )
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


def _list(store: Any) -> str:
    lines = []
    for s in store.samples():
        n_open = sum(1 for a in store.alerts(s.id) if a.open)
        lines.append(
            f"{s.id:>5}  {s.created_at}  {s.site or '-':<20} {s.volume.ml_analyzed:>9.4g} mL  "
            f"{s.rule_set:<30} {n_open} open alert(s)"
        )
    from phytoscope.core.hab import describe_alert

    opened = store.open_alerts()
    lines.append(f"open alerts: {len(opened)}")
    lines += [f"  [{a.id}] sample {a.sample_id}: {describe_alert(a)}" for a in opened]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from phytoscope.config import default_database
    from phytoscope.core.hab import describe_alert
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
            print(
                f"alert {alert.id} acknowledged by {alert.acknowledged_by} at {alert.acknowledged_at}"
            )
            if not args.samples and not args.list:
                return ExitCode.OK
        if args.list or not args.samples:
            print(_list(store))
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
                print(f"  [{a.id}] {describe_alert(a)} ({state})")
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return ExitCode.OK


# -- sample options of `phytoscope classify` ----------------------------------------------


def add_sample_arguments(parser: argparse.ArgumentParser) -> None:
    """Options that turn a classify run into a stored sample with concentrations and alerts."""
    g = parser.add_argument_group(
        "sample (cells/L and HAB alerts; any of these stores the run as one sample, bins pooled)"
    )
    g.add_argument(
        "--sample", action="store_true", help="store a sample even without the options below"
    )
    g.add_argument("--site", default=None, help="where the water was taken")
    g.add_argument(
        "--sampled-at", metavar="ISO", help="when the water was taken (default: IFCB bin time)"
    )
    g.add_argument(
        "--rules", metavar="NAME", help="HAB rule set (default: settings, scotland_habreports)"
    )
    g.add_argument(
        "--rules-overrides", metavar="CSV", help="site thresholds overriding the rule set"
    )
    g.add_argument("--sample-volume", type=float, metavar="ML",
                   help="mL of water the images stand for (IFCB bins: read from their headers)")  # fmt: skip
    g.add_argument(
        "--settled-ml", type=float, metavar="ML", help="Utermöhl: mL settled in the chamber"
    )
    g.add_argument(
        "--chamber-area", type=float, metavar="MM2", help="Utermöhl: chamber bottom area (mm²)"
    )
    g.add_argument("--counted-area", type=float, metavar="MM2", help="Utermöhl: area counted (mm²)")
    g.add_argument("--fields", type=int, metavar="N", help="Utermöhl: fields of view counted")
    g.add_argument(
        "--field-area", type=float, metavar="MM2", help="Utermöhl: area of one field (mm²)"
    )
    g.add_argument(
        "--sample-ml", type=float, metavar="ML", help="water the preservative was added to (mL)"
    )
    g.add_argument(
        "--preservative-ml", type=float, default=0.0, metavar="ML", help="Lugol's etc. added (mL)"
    )
    g.add_argument(
        "--dilution", type=float, default=1.0, help="further dilution factor before settling"
    )


def wants_sample(args: argparse.Namespace) -> bool:
    return bool(
        getattr(args, "sample", False)
        or any(getattr(args, k, None) is not None for k in (
            "site", "sampled_at", "rules", "rules_overrides", "sample_volume", "settled_ml"))
    )  # fmt: skip


_BIN_TIME = re.compile(r"D(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})")
_OLD_BIN_TIME = re.compile(r"IFCB\d+_(\d{4})_(\d{3})_(\d{2})(\d{2})(\d{2})")


def _bin_time(bin_ids: Iterable[str]) -> str | None:
    """Earliest sampling time (UTC) from IFCB bin names.

    New names are ``DYYYYMMDDTHHMMSS_IFCBnnn``; old ones ``IFCBn_YYYY_DDD_HHMMSS`` with a
    day of the year. The IFCB stamps its bins in UTC.
    """
    from datetime import datetime, timedelta, timezone

    times = []
    for b in bin_ids:
        if m := _BIN_TIME.search(b):
            y, mo, d, h, mi, sec = map(int, m.groups())
            times.append(datetime(y, mo, d, h, mi, sec, tzinfo=timezone.utc))
        elif m := _OLD_BIN_TIME.search(b):
            y, doy, h, mi, sec = map(int, m.groups())
            start = datetime(y, 1, 1, h, mi, sec, tzinfo=timezone.utc)
            times.append(start + timedelta(days=doy - 1))
    return min(times).isoformat() if times else None


def sample_volume(args: argparse.Namespace, metas: Iterable[Mapping[str, Any]]) -> Any:
    """The volume the options (or the IFCB bins) give; a clear error when there is none."""
    from phytoscope.core.sample import given_volume, utermohl_volume, volume_from_meta
    from phytoscope.errors import ConfigError

    if args.settled_ml is not None:
        return utermohl_volume(
            args.settled_ml, chamber_area_mm2=args.chamber_area, counted_area_mm2=args.counted_area,
            fields=args.fields, field_area_mm2=args.field_area, sample_ml=args.sample_ml,
            preservative_ml=args.preservative_ml, dilution=args.dilution,
        )  # fmt: skip
    if args.sample_volume is not None:
        return given_volume(args.sample_volume)
    metas = list(metas)
    from_bins = sum(1 for m in metas if "bin" in m)
    if 0 < from_bins < len(metas):
        raise ConfigError(
            "this run mixes IFCB bins with other images: the bins' volume says nothing about the "
            "images, so classify them separately or give --sample-volume ML for all of them"
        )
    volume = volume_from_meta(metas)
    if volume is None:
        raise ConfigError(
            "cannot turn counts into cells/L: give --sample-volume ML (mL of water the images "
            "stand for) or the Utermöhl volumes (--settled-ml, --chamber-area/--counted-area or "
            "--fields/--field-area, --sample-ml/--preservative-ml); IFCB bins carry their own volume"
        )
    return volume


def summarise_sample(
    args: argparse.Namespace,
    predictions: Sequence[Any],
    rois_meta: Iterable[Mapping[str, Any]],
    card: Any,
    store: Any,
    run_id: int | None = None,
    sources: Sequence[str] = (),
) -> str:
    """Store the classified ROIs as one sample, raise its alerts, and say so in text.

    Parameters
    ----------
    args
        Parsed classify options (see :func:`add_sample_arguments`).
    predictions
        Every prediction of the run.
    rois_meta
        ``Roi.meta`` of the classified ROIs (IFCB: ``bin`` and ``ml_analyzed``).
    card
        The model card used (class ranks, groups, chain-forming flags).
    store
        An open :class:`~phytoscope.storage.Store`.
    """
    from phytoscope.config import Settings
    from phytoscope.core.hab import describe_alert, load_rule_set, record_sample
    from phytoscope.core.sample import describe_volume, format_per_l
    from phytoscope.types import Sample

    metas = list(rois_meta)
    volume = sample_volume(args, metas)
    rule_name = args.rules or Settings.load().rule_set
    rule_set = load_rule_set(rule_name, overrides_path=args.rules_overrides)
    bins = sorted({str(m["bin"]) for m in metas if "bin" in m})
    kind = "microscope" if volume.method == "utermohl" else ("ifcb" if bins else "files")
    sample = Sample(
        kind=kind,
        sources=tuple(sources) or tuple(dict.fromkeys(p.source for p in predictions)),
        volume=volume,
        site=args.site or "",
        sampled_at=args.sampled_at or _bin_time(bins),
        run_id=run_id,
    )
    result = record_sample(store, sample, predictions, card, rule_set)
    lines = [
        f"sample {result.sample.id} ({kind}, {describe_volume(volume)}); rule set {rule_set.version}",
    ]
    for c in result.concentrations:
        if c.detected:
            lines.append(f"  {c.taxon:<28} {c.describe()}")
    nd = [c.taxon for c in result.concentrations if not c.detected]
    if nd:
        dl = result.concentrations[0].detection_limit_per_l
        lines.append(f"  not detected (< {format_per_l(dl)} per L): {', '.join(nd)}")
    if result.alerts:
        lines.append(f"ALERTS ({len(result.alerts)}):")
        lines += [f"  [{a.id}] {describe_alert(a)}" for a in result.alerts]
    else:
        lines.append("no taxon at or above a threshold of this rule set")
    if result.hab.not_monitored:
        lines.append("not monitored by this model: " + ", ".join(result.hab.not_monitored))
    lines.append(f"report: phytoscope report {result.sample.id} --db {store.path}")
    return "\n".join(lines)


def _card_of_run(args: argparse.Namespace, label: str) -> Any:
    """The model card a classify run used, found from ``--model`` and the label it recorded.

    Cards of one model share their classes whatever the format, so the first card of the
    same name and version will do when no card has the exact label (a TensorRT engine run).
    """
    from phytoscope import config, modelcard
    from phytoscope.errors import ModelError

    cards = []
    path = Path(args.model) if args.model else config.models_dir()
    if path.is_dir():
        cards = modelcard.discover(path)
    elif path.suffix == ".json":
        cards = [modelcard.ModelCard.load(path)]
    elif modelcard.card_path_for(path).exists():
        cards = [modelcard.ModelCard.load(modelcard.card_path_for(path))]
    exact = [c for c in cards if c.label == label]
    same_model = [c for c in cards if label.startswith(f"{c.name} {c.version} ")]
    if not (exact or same_model):
        raise ModelError(
            f"no sample stored: the model card of {label!r} was not found beside {path}"
        )
    return (exact or same_model)[0]


def classify_hook(args: argparse.Namespace, result: Any) -> str | None:
    """The ``phytoscope classify`` summary hook: a sample when any sample option is given."""
    from phytoscope import config
    from phytoscope.storage import Store

    if not wants_sample(args) or not result.predictions:
        return None
    card = getattr(result, "card", None) or _card_of_run(args, result.model)
    db = Path(args.db) if args.db else config.default_database()
    metas = [result.meta.get((p.source, p.roi_index), {}) for p in result.predictions]
    with Store(db) as store:
        return summarise_sample(
            args, result.predictions, metas, card, store, run_id=result.run_id,
            sources=[str(p) for p in args.paths],
        )  # fmt: skip
