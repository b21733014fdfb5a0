"""``phytoscope report SAMPLE``: a sample's concentrations and HAB alerts as CSV and HTML.

The files are written by :mod:`phytoscope.core.reports` (the window writes the same ones);
this module parses the options, lists samples and acknowledges alerts.

Samples are made by the core session (``phytoscope classify`` with sample options, or the
window); this command reads them back, acknowledges alerts, adds a microscopist's counts
(``--manual-count TAXON N --volume-ml ML``: the stored sample is re-opened in a session,
given the count and saved as its next revision, so the alerts assess it like the model's
counts), and writes the reports.
"""

from __future__ import annotations

import argparse
import sys
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
    parser.add_argument(
        "--note", default="", help="note stored with the acknowledgement or manual count"
    )
    manual = parser.add_argument_group("manual counts (taxa the model cannot see)")
    manual.add_argument(
        "--manual-count",
        nargs=2,
        metavar=("TAXON", "N"),
        help="a microscopist's count of TAXON in SAMPLE (with --volume-ml; --by names who)",
    )
    manual.add_argument(
        "--volume-ml", type=float, metavar="ML", help="mL of original water the count covers"
    )
    manual.add_argument("--remove-manual", metavar="TAXON", help="remove a manual count")
    manual.add_argument(
        "--model", metavar="PATH", help="model folder or card of the sample (default: installed)"
    )


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
        if args.manual_count or args.remove_manual:
            return _manual(store, args)
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


def _manual(store: Any, args: argparse.Namespace) -> int:
    """Add or remove a manual count of one stored sample and save its next revision."""
    from phytoscope import config, modelcard
    from phytoscope.core.hab import load_rule_set
    from phytoscope.core.sample_text import describe
    from phytoscope.core.session import SampleSession
    from phytoscope.errors import ConfigError, ExitCode

    if len(args.samples) != 1:
        raise ConfigError("a manual count is for one SAMPLE: give its id")
    sid = args.samples[0]
    stored = store.sample(sid)
    where = Path(args.model) if args.model else config.models_dir()
    cards = [modelcard.ModelCard.load(where)] if where.is_file() else modelcard.discover(where)
    card = next((c for c in cards if c.label == stored.model), None) or next(
        (c for c in cards if stored.model.startswith(f"{c.name} {c.version} ")), None
    )
    if card is None:
        raise ConfigError(
            f"sample {sid} was classified with {stored.model!r}, which is not in {where}: "
            "pass --model PATH (its folder or card)"
        )
    rule_set = load_rule_set(stored.rule_set) if stored.rule_set else None
    session = SampleSession.reopen(store, sid, card, rule_set)
    if args.remove_manual:
        session.remove_manual_count(args.remove_manual)
    else:
        taxon, text = args.manual_count
        if args.volume_ml is None:
            raise ConfigError("--manual-count needs --volume-ml: the mL the count covers")
        if not text.isdigit():
            raise ConfigError(f"the count must be a whole number, not {text!r}")
        session.add_manual_count(
            taxon, int(text), args.volume_ml, who=args.by or "", note=args.note
        )
        if rule_set is not None and taxon not in session.manual_candidates():
            print(
                f"note: {taxon} is not one of the taxa {rule_set.name} monitors that the "
                f"model cannot see ({', '.join(session.manual_candidates()) or 'none'})",
                file=sys.stderr,
            )
    results = session.save(store, reason="manual count")
    for d in session.samples():
        print(describe(d, next((r for r in results if r.key == d.key), None)))
    return ExitCode.OK if all(not r.problems for r in results) else ExitCode.ERROR
