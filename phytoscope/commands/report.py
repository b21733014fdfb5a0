"""``phytoscope report SAMPLE``: a sample's concentrations and HAB alerts as CSV and HTML.

The files are written by :mod:`phytoscope.core.reports` (the window writes the same ones);
this module parses the options, lists samples and acknowledges alerts.

This module also carries the sample options of ``phytoscope classify``
(:func:`add_sample_arguments`, :func:`summarise_sample`), so a technician can classify,
store the sample and see its alerts in one command.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

HELP = "write a sample's concentrations and HAB alerts as CSV and HTML (--list, --acknowledge)"


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
    from phytoscope.core.reports import html_report, pdf_report, segment_of_run, write_csv
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
                    store, sid, segment=segment_of_run(store, store.sample(sid).run_id)
                )
                path = out / f"sample-{sid}.html"
                path.write_text(page, encoding="utf-8")
                written.append(path)
        if "pdf" in formats:
            for sid in args.samples:
                path = out / f"sample-{sid}.pdf"
                pdf_report(
                    store, sid, path, segment=segment_of_run(store, store.sample(sid).run_id)
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
