"""Input identity: each file, IFCB bin and folder read once; every unusable path said why.

Issue #19 findings 1 and 10 (duplicates, symbolic links, unreadable folders, missing bin
files). Inputs are built under tmp_path from the licensed fixtures.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from phytoscope.sources import InputIndex, expand_paths, iter_inputs, resolve_inputs
from phytoscope.types import Roi, Skipped

DATA = Path(__file__).resolve().parents[1] / "data"
NEW = "D20220522T003051_IFCB134"  # 2 ROIs with an image


def copy_bin(folder: Path, name: str = NEW) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".adc", ".hdr", ".roi"):
        shutil.copyfile(DATA / "ifcb" / (name + suffix), folder / (name + suffix))
    return folder / name


def read(paths, shared: bool = True) -> tuple[list[Roi], list[Skipped]]:
    """Like ``classify``: one ``iter_inputs`` per PATH, sharing one index."""
    index = InputIndex() if shared else None
    items = [item for path in paths for item in iter_inputs([path], index=index)]
    return (
        [i for i in items if isinstance(i, Roi)],
        [i for i in items if isinstance(i, Skipped)],
    )


def test_bin_named_as_stem_file_and_folder_is_read_once(tmp_path):
    """#19.1: ``classify BIN BIN.roi BINDIR`` counted the bin three times."""
    stem = copy_bin(tmp_path / "bins")
    rois, skipped = read([stem, stem.with_suffix(".roi"), tmp_path / "bins"])
    assert [r.index for r in rois] == [2, 3]
    (dup,) = skipped
    assert (
        dup.kind == "duplicate" and "the same IFCB bin as" in dup.reason and str(stem) in dup.reason
    )


def test_shell_glob_of_a_bins_three_files_is_one_bin_without_a_word(tmp_path):
    copy_bin(tmp_path)
    rois, skipped = read(sorted(tmp_path.iterdir()))
    assert len(rois) == 2 and skipped == []


def test_copy_of_a_bin_in_another_folder_is_the_same_sample(tmp_path):
    copy_bin(tmp_path / "a")
    copy_bin(tmp_path / "b")
    rois, skipped = read([tmp_path])
    assert len(rois) == 2
    (dup,) = skipped
    assert dup.kind == "duplicate" and "a copy in another folder" in dup.reason
    assert dup.source == str(tmp_path / "b" / NEW)


def test_symlinked_copy_inside_a_folder_is_read_once(tmp_path):
    """#19.1: a symbolic link to an image in the same folder was counted twice."""
    shutil.copyfile(DATA / "images" / "pwssc_blob.png", tmp_path / "a.png")
    (tmp_path / "sub").mkdir()
    os.symlink(tmp_path / "a.png", tmp_path / "sub" / "b.png")
    rois, skipped = read([tmp_path])
    assert [Path(r.source).name for r in rois] == ["a.png"]
    (dup,) = skipped
    assert dup.kind == "duplicate" and "symbolic link" in dup.reason and "a.png" in dup.reason


def test_hard_link_and_same_file_named_twice(tmp_path):
    shutil.copyfile(DATA / "images" / "pwssc_blob.png", tmp_path / "a.png")
    os.link(tmp_path / "a.png", tmp_path / "hard.png")
    rois, skipped = read([tmp_path / "a.png", tmp_path / "a.png", tmp_path / "hard.png"])
    assert len(rois) == 1
    assert [s.kind for s in skipped] == ["duplicate", "duplicate"]
    assert "named twice" in skipped[0].reason and "hard link" in skipped[1].reason


def test_folder_link_back_into_itself_is_followed_once(tmp_path):
    shutil.copyfile(DATA / "images" / "pwssc_blob.png", tmp_path / "a.png")
    (tmp_path / "sub").mkdir()
    os.symlink(tmp_path, tmp_path / "sub" / "up")
    os.symlink(tmp_path / "sub", tmp_path / "side")  # a second way into sub
    rois, skipped = read([tmp_path])
    assert len(rois) == 1
    reasons = {Path(s.source).name: s.reason for s in skipped}
    assert "symbolic link back into it" in reasons["up"]
    # "side" sorts first and is walked; "sub" is then the same folder again
    assert "already read" in reasons["sub"] and "side" not in reasons


def test_folder_named_again_inside_another(tmp_path):
    copy_bin(tmp_path / "sub")
    rois, skipped = read([tmp_path, tmp_path / "sub"])
    assert len(rois) == 2
    assert [s.kind for s in skipped] == ["duplicate"] and "already read" in skipped[0].reason


def test_symlink_loop_and_broken_link_have_precise_messages(tmp_path):
    """#19.10: both said "no such file or folder"."""
    os.symlink(tmp_path / "b", tmp_path / "a.png")
    os.symlink(tmp_path / "a.png", tmp_path / "b")
    os.symlink(tmp_path / "nowhere.png", tmp_path / "broken.png")
    _, skipped = read([tmp_path / "a.png", tmp_path / "broken.png"])
    assert "symbolic link loop" in skipped[0].reason
    assert "broken symbolic link" in skipped[1].reason and "nowhere.png" in skipped[1].reason
    # inside a folder too, where they used to vanish without a word
    _, inside = read([tmp_path])
    assert sorted(s.reason.split(":")[0] for s in inside) == [
        "broken symbolic link",
        "symbolic link loop",
        "symbolic link loop",
    ]


def test_missing_roi_file_names_what_is_there(tmp_path):
    """#19.10: a bin named by its stem without a .roi said "no such file or folder"."""
    stem = copy_bin(tmp_path)
    stem.with_suffix(".roi").unlink()
    for named in (stem, stem.with_suffix(".roi")):
        (item,) = list(iter_inputs([named]))
        assert isinstance(item, Skipped)
        assert f"{NEW}.roi is missing" in item.reason
        assert f"found {NEW}.hdr, {NEW}.adc" in item.reason


def test_nothing_of_the_bin_there(tmp_path):
    (item,) = list(iter_inputs([tmp_path / (NEW + ".roi")]))
    assert "no other file of IFCB bin" in item.reason


def test_missing_parent_folder_is_named(tmp_path):
    (item,) = list(iter_inputs([tmp_path / "nope" / "x.png"]))
    assert "folder" in item.reason and "nope" in item.reason


@pytest.fixture
def unreadable(monkeypatch):
    """Make a folder unlistable: chmod where that works, else (root) the OS error injected.

    Root reads any folder regardless of its mode, so as root the PermissionError that
    ``os.scandir`` raises for a normal user is injected for that one folder; the code that
    handles it is the real one.
    """

    def make(folder: Path) -> None:
        if os.geteuid() != 0:
            folder.chmod(0)
            return
        real = os.scandir

        def scandir(path="."):
            if Path(path) == folder:
                raise PermissionError(13, "Permission denied", str(path))
            return real(path)

        monkeypatch.setattr(os, "scandir", scandir)

    yield make


def test_unreadable_sub_folder_is_reported(tmp_path, unreadable):
    """#19.5/#19.10: its files were skipped silently and the run exited 0."""
    shutil.copyfile(DATA / "images" / "pwssc_blob.png", tmp_path / "a.png")
    (tmp_path / "locked").mkdir()
    shutil.copyfile(DATA / "images" / "pwssc_blob.png", tmp_path / "locked" / "b.png")
    unreadable(tmp_path / "locked")
    try:
        rois, skipped = read([tmp_path])
    finally:
        (tmp_path / "locked").chmod(stat.S_IRWXU)
    assert len(rois) == 1
    (item,) = skipped
    assert item.source == str(tmp_path / "locked") and "permission denied" in item.reason


def test_named_pipe_is_not_opened(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    rois, skipped = read([tmp_path, tmp_path / "pipe.png"])
    assert rois == [] and all("not a regular file" in s.reason for s in skipped)


def test_folder_named_like_an_image_is_walked(tmp_path):
    shutil.copyfile(DATA / "images" / "pwssc_blob.png", tmp_path / "a.png")
    (tmp_path / "frames.png").mkdir()
    shutil.copyfile(DATA / "images" / "pwssc_blob.png", tmp_path / "frames.png" / "b.png")
    rois, skipped = read([tmp_path / "frames.png"])
    assert len(rois) == 1 and not skipped


def test_non_utf8_file_name_is_read(tmp_path):
    name = os.fsdecode(b"caf\xe9.png")  # Latin-1 name: a surrogate escape in Python
    shutil.copyfile(DATA / "images" / "pwssc_blob.png", tmp_path / name)
    rois, skipped = read([tmp_path])
    assert len(rois) == 1 and not skipped and rois[0].source.endswith(name)


def test_expand_paths_leaves_duplicates_out_and_logs_them(tmp_path, caplog):
    shutil.copyfile(DATA / "images" / "pwssc_blob.png", tmp_path / "a.png")
    os.symlink(tmp_path / "a.png", tmp_path / "b.png")
    assert [(k, p.name) for k, p in expand_paths([tmp_path])] == [("image", "a.png")]
    assert "the same file as" in caplog.text


def test_resolution_order_is_sorted_with_folders_interleaved(tmp_path):
    for name in ("b.png", "a/c.png", "a/b/d.png", "c.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DATA / "images" / "pwssc_blob.png", tmp_path / name)
    entries = [e.path.relative_to(tmp_path).as_posix() for e in resolve_inputs([tmp_path])]
    assert entries == ["a/b/d.png", "a/c.png", "b.png", "c.png"]
