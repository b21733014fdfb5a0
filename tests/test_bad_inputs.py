"""The bad-input battery of issue #19, as one table run through ``phytoscope classify``.

Each row builds its inputs under tmp_path (real files, damaged on purpose; see
tests/faults.py), runs ``classify --format json --db`` in-process with the tiny test model,
and checks what a technician gets: how many organisms were classified, which flags they
carry, which inputs were reported (a substring of each reason), the exit status, that
every classified row and every report reached the database, and that stderr holds no
traceback and no raw OpenCV/tifffile line. Rows are named after the finding of #19 they
cover (``f1`` ... ``f10``) or ``more`` for other inputs a user will meet.

The README's "Bad input" section lists the same table in words.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import tifffile

from phytoscope.cli import main
from tests import faults

DATA = faults.DATA
PNG = DATA / "images" / "pwssc_blob.png"

Build = Callable[[Path, pytest.MonkeyPatch], list]


@dataclass(frozen=True)
class Case:
    """One row: inputs, and what ``classify`` must make of them."""

    build: Build
    rois: int | range
    skipped: tuple[str, ...] = ()
    """one reason substring per reported input, in order"""
    flags: dict[str, int] = field(default_factory=dict)
    """flag -> number of classified organisms carrying it (all others carry none)"""
    exit: int = 3


def _good(tmp: Path) -> str:
    shutil.copyfile(PNG, tmp / "good.png")
    return str(tmp / "good.png")


# -- builders ------------------------------------------------------------------------------


def symlinked_copy(tmp, mp):
    (tmp / "in").mkdir()
    shutil.copyfile(PNG, tmp / "in" / "a.png")
    os.symlink(tmp / "in" / "a.png", tmp / "in" / "b.png")
    return [tmp / "in"]


def bin_copy(tmp, mp):
    faults.copy_bin(tmp / "in" / "day1")
    faults.copy_bin(tmp / "in" / "backup")
    return [tmp / "in"]


def truncated_bin(tmp, mp):
    stem = faults.copy_bin(tmp, faults.OLD_BIN)
    faults.truncate(stem.with_suffix(".roi"), 40000)
    return [stem]


def grey_alpha_tiff(tmp, mp):
    image = np.dstack([faults.crop(), np.full(faults.crop().shape, 255, np.uint8)])
    tifffile.imwrite(tmp / "ga.tif", image, photometric="minisblack", extrasamples=["unassalpha"])
    return [tmp / "ga.tif"]


def truncated_stack(tmp, mp):
    return [faults.tiff_stack(tmp / "stack.tif", pages=200, size=32, keep=0.5)]


def over_opencv_limit(tmp, mp):
    mp.setenv("PHYTOSCOPE_MAX_PIXELS", str(4 * 10**9))  # our guard off: OpenCV's own fails
    return [faults.png_bomb(tmp / "huge.png", 40000, 40000), _good(tmp)]


def over_pixel_limit(tmp, mp):
    return [faults.png_bomb(tmp / "huge.png", 20000, 20000), _good(tmp)]


def adc_overflow(tmp, mp):
    return [faults.edit_adc(faults.copy_bin(tmp), line=2, column=15, value="1e999")]


def adc_bad_row(tmp, mp):
    return [faults.edit_adc(faults.copy_bin(tmp, faults.OLD_BIN), line=4, column=11, value="x")]


def _deny(mp, module, target: Path) -> None:
    """Root reads everything: inject the PermissionError a user would meet for ``target``."""
    import builtins

    name = "scandir" if module is os else "open"
    real = os.scandir if module is os else builtins.open

    def guarded(path=".", *args, **kwargs):
        if Path(path) == target:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    mp.setattr(module, name, guarded, raising=False)


def unreadable_folder(tmp, mp):
    (tmp / "in" / "locked").mkdir(parents=True)
    shutil.copyfile(PNG, tmp / "in" / "a.png")
    shutil.copyfile(PNG, tmp / "in" / "locked" / "b.png")
    if os.geteuid() != 0:
        (tmp / "in" / "locked").chmod(0)
    else:
        _deny(mp, os, tmp / "in" / "locked")
    return [tmp / "in"]


def unreadable_file(tmp, mp):
    from phytoscope.imaging import decode

    bad = tmp / "secret.png"
    shutil.copyfile(PNG, bad)
    if os.geteuid() != 0:
        bad.chmod(0)
    else:
        _deny(mp, decode, bad)
    return [bad, _good(tmp)]


def symlink_loop(tmp, mp):
    os.symlink(tmp / "b.png", tmp / "a.png")
    os.symlink(tmp / "a.png", tmp / "b.png")
    return [tmp / "a.png"]


def broken_link(tmp, mp):
    os.symlink(tmp / "gone.png", tmp / "a.png")
    return [tmp / "a.png"]


def missing_roi(tmp, mp):
    stem = faults.copy_bin(tmp)
    stem.with_suffix(".roi").unlink()
    return [stem]


def one_pixel(tmp, mp):
    return [faults.write_png(tmp / "dot.png", np.full((1, 1), 128, np.uint8)), _good(tmp)]


def empty_file(tmp, mp):
    (tmp / "empty.png").write_bytes(b"")
    return [tmp / "empty.png"]


def zero_byte_roi(tmp, mp):
    stem = faults.copy_bin(tmp)
    stem.with_suffix(".roi").write_bytes(b"")
    return [stem]


def header_only_adc(tmp, mp):
    stem = faults.copy_bin(tmp)
    stem.with_suffix(".adc").write_text("trigger#,ADCtime,RoiX,RoiY,RoiWidth,RoiHeight\n")
    return [stem]


def empty_adc(tmp, mp):
    stem = faults.copy_bin(tmp)
    stem.with_suffix(".adc").write_bytes(b"")
    return [stem]


def non_utf8_name(tmp, mp):
    name = os.fsdecode(b"Station caf\xe9 \xff.png")
    shutil.copyfile(PNG, tmp / name)
    return [tmp]


def folder_named_like_image(tmp, mp):
    (tmp / "frames.png").mkdir()
    shutil.copyfile(PNG, tmp / "frames.png" / "a.png")
    return [tmp / "frames.png"]


def many_pages(tmp, mp):
    mp.setenv("PHYTOSCOPE_MAX_PIXELS", "1000")  # 4000 pixels per file: 40 pages of 10 x 10
    return [faults.tiff_stack(tmp / "many.tif", pages=50, size=10)]


def sixteen_bit_png(tmp, mp):
    return [faults.write_png(tmp / "deep.png", faults.crop().astype(np.uint16) * 64)]


def cmyk_jpeg(tmp, mp):
    image = pytest.importorskip("PIL.Image", reason="Pillow writes the CMYK JPEG")
    image.new("CMYK", (40, 30), (0, 200, 200, 10)).save(tmp / "cmyk.jpg")
    return [tmp / "cmyk.jpg"]


def vanishing(tmp, mp):
    import phytoscope.sources as sources

    (tmp / "in").mkdir()
    shutil.copyfile(PNG, tmp / "in" / "a.png")
    shutil.copyfile(PNG, tmp / "in" / "b.png")
    real = sources.resolve_inputs

    def listed_then_deleted(paths, index=None):
        for entry in real(paths, index):
            if entry.path.name == "b.png":
                entry.path.unlink()
            yield entry

    mp.setattr(sources, "resolve_inputs", listed_then_deleted)
    return [tmp / "in"]


def named_pipe(tmp, mp):
    os.mkfifo(tmp / "camera.png")
    return [tmp / "camera.png"]


def text_named_jpeg(tmp, mp):
    (tmp / "notes.jpg").write_text("not a picture")
    return [tmp / "notes.jpg"]


def truncated_png(tmp, mp):
    path = faults.write_png(tmp / "cut.png", faults.crop())
    return [faults.truncate(path, path.stat().st_size // 2)]


def truncated_jpeg(tmp, mp):
    import cv2

    cv2.imwrite(str(tmp / "cut.jpg"), faults.crop())
    return [faults.truncate(tmp / "cut.jpg", (tmp / "cut.jpg").stat().st_size // 2)]


def pages_cut_off(tmp, mp):
    return [faults.tiff_pages(tmp / "pages.tif", pages=30, size=32, keep=0.5)]


def no_run_time(tmp, mp):
    stem = faults.copy_bin(tmp)
    hdr = stem.with_suffix(".hdr")
    hdr.write_text(hdr.read_text().replace("runTime: 715.6575", "runTime: nan"))
    for line in (1, 2, 3):
        faults.edit_adc(stem, line, 22, "")
    return [stem]


def missing_path(tmp, mp):
    return [tmp / "typo" / "sample.png"]


def unsupported(tmp, mp):
    (tmp / "notes.txt").write_text("x")
    return [tmp / "notes.txt"]


def nothing_usable(tmp, mp):
    (tmp / "in").mkdir()
    (tmp / "in" / "notes.txt").write_text("x")
    (tmp / "in" / ".hidden.png").write_bytes(b"junk")
    return [tmp / "in"]


def nan_float_tiff(tmp, mp):
    data = faults.crop().astype(np.float32)
    data[:5, :5] = np.nan
    tifffile.imwrite(tmp / "float.tif", data)
    return [tmp / "float.tif"]


def nul_in_adc(tmp, mp):
    stem = faults.copy_bin(tmp)
    adc = stem.with_suffix(".adc")
    adc.write_bytes(adc.read_bytes() + b"\x00\x00\x00\n")
    return [stem]


CASES: dict[str, Case] = {
    "f1-symlinked-copy-in-folder": Case(symlinked_copy, 1, ("the same file as",)),
    "f1-bin-copy-in-two-folders": Case(bin_copy, 2, ("a copy in another folder",)),
    "f2-truncated-bin": Case(truncated_bin, 2, ("2 of 6 ROIs read",), {"partial": 2}),
    "f3-grey-alpha-tiff": Case(grey_alpha_tiff, 1, exit=0),
    "f4-truncated-tiff-stack": Case(
        truncated_stack, range(90, 200), ("of 200 pages read",), {"partial": -1}
    ),
    "f5-png-over-opencv-limit": Case(over_opencv_limit, 1, ("OpenCV cannot decode",)),
    "f5-adc-value-1e999": Case(adc_overflow, 1, ("ADC line 2 skipped",), {"partial": 1}),
    "f5-malformed-adc-row": Case(adc_bad_row, 5, ("ADC line 4 skipped",), {"partial": 5}),
    "f5-unreadable-folder": Case(unreadable_folder, 1, ("permission denied",)),
    "f5-unreadable-file": Case(unreadable_file, 1, ("permission denied",)),
    "f10-symlink-loop": Case(symlink_loop, 0, ("symbolic link loop",)),
    "f10-broken-symlink": Case(broken_link, 0, ("broken symbolic link",)),
    "f10-missing-roi-file": Case(missing_roi, 0, (".roi is missing",)),
    "f10-one-pixel-image": Case(one_pixel, 2, flags={"tiny": 1}, exit=0),
    "f10-20000px-png": Case(over_pixel_limit, 1, ("over the 64 MP limit",)),
    "more-empty-file": Case(empty_file, 0, ("empty file",)),
    "more-zero-byte-roi": Case(zero_byte_roi, 0, ("0 of 2 ROIs read",)),
    "more-header-only-adc": Case(header_only_adc, 0, ("holds no image",)),
    "more-empty-adc": Case(empty_adc, 0, (".adc is empty",)),
    "more-non-utf8-name": Case(non_utf8_name, 1, exit=0),
    "more-folder-named-like-image": Case(folder_named_like_image, 1, exit=0),
    "more-huge-page-count": Case(many_pages, 40, ("pages 41 and after not read",), {"partial": 40}),
    "more-16-bit-png": Case(sixteen_bit_png, 1, exit=0),
    "more-cmyk-jpeg": Case(cmyk_jpeg, 1, exit=0),
    "more-vanishes-mid-run": Case(vanishing, 1, ("no longer exists",)),
    "more-named-pipe": Case(named_pipe, 0, ("not a regular file",)),
    "more-text-named-jpeg": Case(text_named_jpeg, 0, ("not a readable JPG image",)),
    "more-truncated-png": Case(truncated_png, 0, ("ends before its last chunk",)),
    "more-truncated-jpeg": Case(truncated_jpeg, 0, ("end marker",)),
    "more-page-chain-cut": Case(pages_cut_off, range(1, 30), ("cannot be read",), {"partial": -1}),
    "more-no-run-time": Case(no_run_time, 2, flags={"no_volume": 2}, exit=0),
    "more-missing-path": Case(missing_path, 0, ("folder",)),
    "more-unsupported-file": Case(unsupported, 0, ("not a supported image",)),
    "more-nothing-usable": Case(nothing_usable, 0, exit=1),
    "more-nan-float-tiff": Case(nan_float_tiff, 1, exit=0),
    "more-nul-bytes-in-adc": Case(nul_in_adc, 2, exit=0),
}


@pytest.fixture
def classify(tiny_model_dir, tmp_path, capfd):
    """Run ``phytoscope classify --format json --db`` in-process; returns (code, doc, err, db)."""

    def run(paths: list) -> tuple[int, dict | None, str, Path]:
        db = tmp_path / "results.sqlite"
        args = ["classify", *map(str, paths), "--format", "json", "--db", str(db)]
        code = main([*args, "--model", str(tiny_model_dir), "--backend", "onnxruntime"])
        out, err = capfd.readouterr()
        return code, (json.loads(out) if out.strip() else None), err, db

    return run


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, classify, tmp_path, monkeypatch):
    case = CASES[name]
    (tmp_path / "work").mkdir()
    paths = case.build(tmp_path / "work", monkeypatch)
    code, doc, err, db = classify(paths)
    assert "Traceback" not in err and "[ WARN" not in err and "tifffile" not in err, err
    assert code == case.exit, err
    if case.exit == 1:
        assert "no images or IFCB bins found" in err
        return
    assert doc is not None
    predictions, skipped = doc["predictions"], doc["skipped"]
    n = len(predictions)
    assert n in case.rois if isinstance(case.rois, range) else n == case.rois, (n, skipped)
    assert len(skipped) == len(case.skipped), skipped
    for wanted, got in zip(case.skipped, skipped, strict=True):
        assert wanted in got["reason"], got
        assert f"skipped: {got['source']}: {got['reason']}" in err  # the user is told
    flags = Counter(flag for p in predictions for flag in p["flags"])
    expected = {k: (n if v == -1 else v) for k, v in case.flags.items()}
    assert dict(flags) == expected
    # nothing classified or reported is lost on the way to the database
    stored = sqlite3.connect(db)
    try:
        assert stored.execute("SELECT count(*) FROM predictions").fetchone()[0] == n
        assert stored.execute("SELECT count(*) FROM skipped").fetchone()[0] == len(skipped)
    finally:
        stored.close()


def test_f1_bin_named_as_stem_file_and_folder_counts_once(classify, tmp_path):
    """#19.1: ``classify BIN BIN.roi BINDIR`` counted the bin's organisms three times."""
    stem = faults.copy_bin(tmp_path / "bins")
    code, doc, err, _ = classify([stem, stem.with_suffix(".roi"), tmp_path / "bins"])
    assert doc is not None and len(doc["predictions"]) == 2
    # the repeats are named on stderr (exit 3: something was skipped, as for any other input)
    assert "read once" in err or "same" in err
    assert code == 3


# -- the store, through the command ------------------------------------------------------------


def _foreign(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE notes (text TEXT)")
    db.commit()
    db.close()


@pytest.mark.parametrize(
    "make, message",
    [
        (_foreign, "another program's SQLite database"),
        (lambda p: p.write_text("plain text"), "not a SQLite database"),
        (lambda p: p.mkdir(), "is a folder"),
    ],
    ids=["f10-foreign-sqlite", "not-a-database", "folder"],
)
def test_bad_database(tiny_model_dir, tmp_path, capfd, make, message):
    db = tmp_path / "db.sqlite"
    make(db)
    before = db.read_bytes() if db.is_file() else None
    code = main(
        [
            "classify",
            str(PNG),
            "--db",
            str(db),
            "--model",
            str(tiny_model_dir),
            "--backend",
            "onnxruntime",
        ]
    )
    err = capfd.readouterr().err
    assert code == 1 and message in err and "Traceback" not in err
    if before is not None:
        assert db.read_bytes() == before  # not switched to WAL, no table added


def _can_mount_tmpfs() -> str | None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return "needs root and unshare to mount a small file system"
    probe = subprocess.run(
        ["unshare", "--mount", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True,
    )
    return None if probe.returncode == 0 else "this kernel refuses a private mount namespace"


def test_f6_real_full_disk(tiny_model_dir, tmp_path):
    """#19.6 on a real full file system: a 512 kB tmpfs in a private mount namespace."""
    why = _can_mount_tmpfs()
    if why:
        pytest.skip(why)
    images = tmp_path / "images"
    images.mkdir()
    for i in range(400):
        shutil.copyfile(PNG, images / f"long_file_name_to_fill_the_disk_{i:04d}.png")
    disk = tmp_path / "disk"
    disk.mkdir()
    command = (
        f"mount -t tmpfs -o size=512k tmpfs {disk} && exec {sys.executable} -m phytoscope "
        f"classify {images} --batch-size 4 --db {disk}/r.sqlite --model {tiny_model_dir} "
        "--backend onnxruntime --format csv"
    )
    proc = subprocess.run(
        ["unshare", "--mount", "sh", "-c", command],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "the disk is full" in proc.stderr and "what was stored before is kept" in proc.stderr
    assert "Traceback" not in proc.stderr and "rollback" not in proc.stderr


def test_no_raw_library_lines_on_a_real_terminal_run(tiny_model_dir, tmp_path):
    """#19.10 as a user sees it: stderr of a separate process (the CLI's own logging setup)."""
    png = faults.write_png(tmp_path / "cut.png", faults.crop())
    faults.truncate(png, png.stat().st_size // 2)
    stack = faults.tiff_pages(tmp_path / "cut.tif", pages=20, size=32, keep=0.5)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "phytoscope",
            "classify",
            str(png),
            str(stack),
            "--model",
            str(tiny_model_dir),
            "--backend",
            "onnxruntime",
            "--format",
            "csv",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 3, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    noise = [ln for ln in lines if not ln.startswith(("skipped: ", "summary", "  ", "stored as"))]
    assert not noise, noise
