"""Rebuild tests/data/openset from ../shared/data (developer tool).

Run from the repository root: ``python tests/data/build_openset_fixtures.py /path/to/shared/data``.
A few images per kind, for the backend parity test of the open-set model: known classes
(Pseudo-nitzschia, zooplankton, detritus, Mesodinium, ciliate) and organisms no class covers
(SPC "Unknown", unlabelled IFCB ROIs, eyepiece frames). Only MIT / CC BY sources (see
tests/data/ATTRIBUTION.md); shrunk so the longest side is at most 160 px (PNG).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import cv2

OUT = Path(__file__).resolve().parent / "openset"

WANTED = (  # (source, label, how many)
    ("marzi_pseudo_nitzschia", "Pseudo-nitzschia_calliantha", 3),
    ("pwssc_spc_zooplankton_subset", "Copepod", 2),
    ("pwssc_spc_zooplankton_subset", "Larvacea", 2),
    ("pwssc_spc_zooplankton_subset", "Snow", 2),
    ("smhi_ifcb_fixtures", "Mesodinium_major", 2),
    ("smhi_ifcb_fixtures", "Strombidium-like", 2),
    ("pwssc_spc_zooplankton_subset", "Unknown", 3),
    ("ifcb_raw_bins", "unlabelled", 3),
    ("lynkos_eyepiece_frames", "nitzschia", 2),
    ("lynkos_eyepiece_frames", "closterium", 2),
    ("lynkos_eyepiece_frames", "non-algae", 2),
    ("lynkos_eyepiece_frames", "oscillatoria", 2),
)


def main(shared: Path) -> None:
    OUT.mkdir(exist_ok=True)
    with open(shared / "manifest.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for source, label, count in WANTED:
        chosen = [r for r in rows if r["source"] == source and r["label"] == label][:count]
        for n, row in enumerate(chosen):
            image = cv2.imread(str(shared / row["path"]), cv2.IMREAD_UNCHANGED)
            scale = 160 / max(image.shape[:2])
            if scale < 1:
                image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(OUT / f"{source}__{label}__{n}.png"), image)
            print(row["path"])


if __name__ == "__main__":
    main(Path(sys.argv[1]))
