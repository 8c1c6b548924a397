import os
import shutil

import pytest

from edgevqa.calib.videos import check_disjoint, resolve_video_set
from edgevqa.errors import EdgeVQAError


@pytest.fixture
def clip(small_clip):
    return small_clip


def test_folder_list_and_single_video(tmp_path, clip):
    folder = tmp_path / "videos"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(clip, folder / "b.mp4")
    (folder / "sub" / "a.MKV").write_bytes(open(clip, "rb").read() + b"\0")  # different bytes, other extension
    (folder / "notes.txt").write_text("not a video")
    (folder / ".hidden.mp4").write_bytes(b"x")
    found = resolve_video_set(folder)
    assert [os.path.basename(v.path) for v in found] == ["b.mp4", "a.MKV"]

    listing = tmp_path / "list.txt"
    listing.write_text(f"# calibration set\nvideos/b.mp4\n\n{clip}\n")
    listed = resolve_video_set(listing)
    assert len(listed) == 1  # the two entries have the same bytes: counted once
    assert resolve_video_set(clip)[0].path == os.path.abspath(clip)


@pytest.mark.parametrize("case", ["missing", "empty_folder", "empty_list", "missing_entry", "binary"])
def test_bad_sets_raise_one_line(tmp_path, case):
    if case == "missing":
        spec = tmp_path / "nope"
    elif case == "empty_folder":
        spec = tmp_path / "empty"
        spec.mkdir()
    elif case == "empty_list":
        spec = tmp_path / "list.txt"
        spec.write_text("# nothing\n")
    elif case == "missing_entry":
        spec = tmp_path / "list.txt"
        spec.write_text("a.mp4\n")
    else:
        spec = tmp_path / "blob.bin"
        spec.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(EdgeVQAError) as info:
        resolve_video_set(spec, "--calib")
    message = str(info.value)
    assert "\n" not in message and message.startswith("--calib ") and str(spec) in message
    if case == "missing_entry":
        assert "line 1" in message


def test_holdout_copy_of_a_calibration_video_is_caught(tmp_path, clip):
    copy = tmp_path / "renamed.mp4"
    shutil.copy(clip, copy)
    with pytest.raises(EdgeVQAError, match="shares 1 video"):
        check_disjoint(resolve_video_set(clip), resolve_video_set(copy, "--holdout"))
