"""IFCB bins for sample tests, written under tmp_path (imported as ``tests.ifcb_bins``).

``copy_bin`` renames the real fixture bin (tests/data/ifcb, SMHI IFCB134, CC BY 4.0) so a
test can have bins of other times or instruments; ``make_bin`` writes a bin of the new
format with any number of ROIs, every ROI the real pixels of the fixture's ROI 2, and can
cut its ``.roi`` short (a truncated copy, as a failed transfer leaves it).
"""

from __future__ import annotations

import shutil
from pathlib import Path

DATA = Path(__file__).parent / "data" / "ifcb"
FIXTURE = "D20220522T003051_IFCB134"
FIXTURE_ML = 0.25 * (715.6575 - 0.15215060763888888) / 60  # from its .hdr


def copy_bin(folder: Path, name: str = FIXTURE) -> Path:
    """The fixture bin under another name (its time and instrument are in the name)."""
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".adc", ".hdr", ".roi"):
        shutil.copyfile(DATA / (FIXTURE + suffix), folder / (name + suffix))
    return folder / name


def _fixture_roi() -> tuple[bytes, int, int]:
    row = (DATA / (FIXTURE + ".adc")).read_text().splitlines()[1].split(",")
    w, h, start = int(row[15]), int(row[16]), int(row[17])
    data = (DATA / (FIXTURE + ".roi")).read_bytes()[start : start + w * h]
    return data, w, h


def make_bin(
    folder: Path,
    name: str,
    rois: int,
    run_time: float = 1000.0,
    inhibit_time: float = 40.0,
    keep_rois: int | None = None,
) -> Path:
    """A new-format bin of ``rois`` images; ``keep_rois`` cuts the .roi after that many.

    ml_analyzed = 0.25 x (run_time - inhibit_time) / 60 (4.0 mL by default).
    """
    folder.mkdir(parents=True, exist_ok=True)
    header = (DATA / (FIXTURE + ".hdr")).read_text(encoding="latin-1").splitlines()
    header = [
        f"runTime: {run_time}"
        if line.startswith("runTime:")
        else f"inhibitTime: {inhibit_time}"
        if line.startswith("inhibitTime:")
        else line
        for line in header
    ]
    (folder / f"{name}.hdr").write_text("\n".join(header) + "\n", encoding="latin-1")
    pixels, w, h = _fixture_roi()
    lines, start = [], 0
    for n in range(1, rois + 1):
        cells = ["0"] * 24
        cells[0] = str(n)
        cells[13], cells[14], cells[15], cells[16], cells[17] = (
            "10",
            "20",
            str(w),
            str(h),
            str(start),
        )
        lines.append(",".join(cells))
        start += w * h
    (folder / f"{name}.adc").write_text("\n".join(lines) + "\n")
    kept = rois if keep_rois is None else keep_rois
    (folder / f"{name}.roi").write_bytes(pixels * kept)
    return folder / name


def ml_of(run_time: float = 1000.0, inhibit_time: float = 40.0) -> float:
    return 0.25 * (run_time - inhibit_time) / 60
