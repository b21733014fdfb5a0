"""Rebuild tests/data fixtures and resources/samples from ../shared/data (developer tool).

Run from the repository root: ``python tests/data/build_fixtures.py /path/to/shared/data``.
Only MIT / CC BY images are copied (see tests/data/ATTRIBUTION.md and
resources/samples/ATTRIBUTION.md); the FlowCam lake images and the GPL PML images never are.
Tests never read ../shared: they use the files this script wrote.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests" / "data"
SAMPLES = ROOT / "resources" / "samples"

FRAME = "Pn_delicatissima_20230523_0035_14.jpg"
SAMPLE_FRAME = "Pn_calliantha_20230523_0035_24.jpg"


def copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    dst.chmod(0o644)


def main(shared: Path) -> None:
    images = shared / "images"
    raw = shared / "ifcb" / "raw"
    # -- tests/data ------------------------------------------------------------------
    for stem in ("D20220522T003051_IFCB134", "IFCB5_2012_028_081515"):
        for suffix in (".adc", ".hdr", ".roi"):
            copy(raw / (stem + suffix), TESTS / "ifcb" / (stem + suffix))
    # ROIs as exported by the bins' original tools, to check our reader pixel for pixel
    copy(
        shared
        / "ifcb/rois/D20220522T003051_IFCB134/Mesodinium_rubrum/D20220522T003051_IFCB134_00002.png",
        TESTS / "ifcb" / "D20220522T003051_IFCB134_00002.png",
    )
    copy(
        shared / "ifcb/rois/IFCB5_2012_028_081515/unlabelled/IFCB5_2012_028_081515_00002.png",
        TESTS / "ifcb" / "IFCB5_2012_028_081515_00002.png",
    )
    copy(
        images
        / "marzi_pseudo_nitzschia/crops_bbox/Pseudo-nitzschia_delicatissima/Pn_delicatissima_20230523_0DB2_25_a294_1.jpg",
        TESTS / "images" / "pn_delicatissima_crop.jpg",
    )
    copy(
        images / "smhi_ifcb_fixtures/Cryptomonadales/D20230810T113059_IFCB134_04108.png",
        TESTS / "images" / "smhi_cryptomonadales.png",
    )
    copy(
        images
        / "pwssc_spc_zooplankton_subset/Blob/SPC-PWSSC-1459783708-000832-033-2910-2344-44-44.png",
        TESTS / "images" / "pwssc_blob.png",
    )
    # a deliberately corrupt file: the first 200 bytes of a real PNG (header, no image data)
    src = (TESTS / "images" / "smhi_cryptomonadales.png").read_bytes()
    (TESTS / "images" / "corrupt.png").write_bytes(src[:200])
    # one annotated full frame at half resolution (JPEG q80, ~90 kB) and its annotations
    frame_src = images / "marzi_pseudo_nitzschia/full_frames/Pseudo-nitzschia_delicatissima" / FRAME
    frame = cv2.imread(str(frame_src))
    half = cv2.resize(frame, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    (TESTS / "frame").mkdir(parents=True, exist_ok=True)
    cv2.imwrite(
        str(TESTS / "frame" / FRAME.replace(".jpg", "_half.jpg")),
        half,
        [cv2.IMWRITE_JPEG_QUALITY, 80],
    )
    coco = json.loads(
        (images / "marzi_pseudo_nitzschia/coco_labels/instances_default_1.json").read_text()
    )
    image_id = next(i["id"] for i in coco["images"] if i["file_name"] == FRAME)
    boxes = [
        [round(v / 2) for v in a["bbox"]] for a in coco["annotations"] if a["image_id"] == image_id
    ]
    (TESTS / "frame" / "annotations.json").write_text(
        json.dumps(
            {
                "image": FRAME.replace(".jpg", "_half.jpg"),
                "scale": 0.5,
                "source": FRAME,
                "boxes_xywh": boxes,
            },
            indent=1,
        )
        + "\n"
    )

    # -- resources/samples -----------------------------------------------------------
    if SAMPLES.exists():
        shutil.rmtree(SAMPLES / "images", ignore_errors=True)
        shutil.rmtree(SAMPLES / "ifcb", ignore_errors=True)
    marzi = images / "marzi_pseudo_nitzschia/crops_bbox"
    for species in ("Pseudo-nitzschia_calliantha", "Pseudo-nitzschia_delicatissima"):
        for src in sorted((marzi / species).glob("*.jpg"), key=lambda p: p.stat().st_size)[5:7]:
            copy(src, SAMPLES / "images" / "pseudo-nitzschia" / src.name)
    for cls in ("Copepod", "Snow", "Dot"):
        for src in sorted((images / "pwssc_spc_zooplankton_subset" / cls).glob("*.png"))[:2]:
            copy(src, SAMPLES / "images" / "pwssc" / f"{cls}_{src.name}")
    for cls in ("Mesodinium_rubrum", "Strombidium-like", "Cryptomonadales"):
        for src in sorted((images / "smhi_ifcb_fixtures" / cls).glob("*.png"))[:2]:
            copy(src, SAMPLES / "images" / "smhi_ifcb" / f"{cls}_{src.name}")
    full = cv2.imread(
        str(
            images / "marzi_pseudo_nitzschia/full_frames/Pseudo-nitzschia_calliantha" / SAMPLE_FRAME
        )
    )
    (SAMPLES / "frames").mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(SAMPLES / "frames" / SAMPLE_FRAME), full, [cv2.IMWRITE_JPEG_QUALITY, 80])
    for suffix in (".adc", ".hdr", ".roi"):
        copy(
            raw / ("D20220522T000439_IFCB134" + suffix),
            SAMPLES / "ifcb" / ("D20220522T000439_IFCB134" + suffix),
        )


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT.parent / "shared" / "data"))
