"""``phytoscope report SAMPLE``: a sample's concentrations and HAB alerts as CSV and HTML.

The files are written by :mod:`phytoscope.core.reports` (the window writes the same ones);
this module parses the options, lists samples and acknowledges alerts.

Samples are made by the core session (``phytoscope classify`` with sample options, or the
window); this command reads them back, acknowledges alerts, and writes the reports.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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


def run(args: argparse.Namespace) -> int:
    from phytoscope.config import default_database
    from phytoscope.core.hab import describe_alert
    from phytoscope.core.reports import write_csv, write_report
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
        for fmt in ("html", "pdf"):
            if fmt in formats:
                for sid in args.samples:
                    written.append(write_report(store, sid, out / f"sample-{sid}.{fmt}", fmt))
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
