"""``phytoscope ecotaxa-import EXPORT --out FOLDER``: validated EcoTaxa labels as training folders.

A taxonomist's validations in EcoTaxa come home as ``FOLDER/<category>/<object>.png``, the
layout ``phytoscope train`` and ``learn`` read (see :mod:`phytoscope.core.formats.ecotaxa_read`).
"""

from __future__ import annotations

import argparse
import sys

from phytoscope.commands.progressbar import add_progress_option

HELP = "read an EcoTaxa export (TSV or zip) back as labelled training folders, one per category"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "export", help="the EcoTaxa export: its .zip, or a .tsv with the images beside it"
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="FOLDER",
        help="training folder (one sub-folder per category)",
    )
    parser.add_argument(
        "--status",
        action="append",
        choices=("validated", "dubious", "predicted"),
        help="which objects to take (repeatable; default: validated only, the confirmed labels)",
    )
    add_progress_option(parser)


def run(args: argparse.Namespace) -> int:
    from phytoscope.commands.progressbar import terminal_progress
    from phytoscope.core.formats import ecotaxa_read
    from phytoscope.errors import ExitCode

    statuses = args.status or [ecotaxa_read.VALIDATED]
    with terminal_progress(args.progress, units={ecotaxa_read.STAGE: "objects"}) as progress:
        result = ecotaxa_read.to_training_folders(
            args.export, args.out, statuses, progress=progress
        )
    print(ecotaxa_read.import_summary(result))
    for line in result.missing[:10]:
        print(f"missing image: {line}", file=sys.stderr)
    if result.images == 0:
        taken = ", ".join(statuses)
        print(
            f"phytoscope: no {taken} object with an image in {args.export}: validate them in "
            "EcoTaxa first, or take other statuses with --status",
            file=sys.stderr,
        )
        return ExitCode.ERROR
    return ExitCode.PARTIAL if result.missing else ExitCode.OK
