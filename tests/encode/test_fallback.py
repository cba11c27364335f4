"""`vcodec=auto` and per-camera fallback, end to end: real encoders, decoded back frame by frame."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from helpers.frames import episodes
from helpers.hardware import V4L2, needs_compiled, no_gpu
from helpers.recording import CAMS, FPS, check_identity, record
from streamrec import EncoderConfig, probe, verify


def video_files(root: Path, key: str) -> list[tuple[int, int]]:
    return [(e[f"videos/{key}/chunk_index"], e[f"videos/{key}/file_index"]) for e in episodes(root)]


def test_auto_records_every_frame(tmp_path, caplog):
    lengths = [23, 17]
    with caplog.at_level(logging.INFO, logger="streamrec"):
        reports = record(tmp_path / "ds", lengths, encoder=EncoderConfig(vcodec="auto"))
    check_identity(tmp_path / "ds", lengths)
    picked = probe(width=128, height=96, fps=FPS).auto  # cached by the recording's own probes
    assert {c.encoder for r in reports for c in r.cameras.values()} == {picked}
    assert f"vcodec=auto chose {picked}" in caplog.text
    info = json.loads((tmp_path / "ds/meta/info.json").read_text())
    codec = {"libsvtav1": "av1"}.get(picked, picked.split("_")[0])
    assert {info["features"][key]["info"]["video.codec"] for key in CAMS} == {codec}
    assert not verify(tmp_path / "ds").findings


@no_gpu
def test_auto_is_software_without_a_gpu(tmp_path):
    reports = record(tmp_path / "ds", [12], encoder=EncoderConfig(vcodec="auto"))
    assert {c.encoder for c in reports[0].cameras.values()} == {"libsvtav1"}


@needs_compiled("h264_v4l2m2m")
@pytest.mark.skipif(V4L2, reason="this machine has /dev/video* devices: h264_v4l2m2m might open")
def test_an_encoder_that_cannot_open_falls_back_and_the_report_says_so(tmp_path, caplog):
    lengths = [20, 15]
    with caplog.at_level(logging.WARNING, logger="streamrec"):
        reports = record(tmp_path / "ds", lengths, encoder=EncoderConfig(vcodec="h264_v4l2m2m"))
    check_identity(tmp_path / "ds", lengths)
    for key in CAMS:
        first, second = reports[0].cameras[key], reports[1].cameras[key]
        assert first.encoder == second.encoder == "libsvtav1"
        (fallback,) = first.fallbacks
        assert (fallback.failed, fallback.replacement, fallback.at_frame) == ("h264_v4l2m2m", "libsvtav1", None)
        assert "Could not find a valid device" in fallback.error  # FFmpeg's words, all of them
        assert second.fallbacks == ()
        assert f"{key}: h264_v4l2m2m failed to open (Could not find a valid device" in caplog.text
    info = json.loads((tmp_path / "ds/meta/info.json").read_text())
    assert info["features"][CAMS[0]]["info"]["video.codec"] == "av1"  # what the files hold
    assert "video.codec_by_file" not in info["features"][CAMS[0]]["info"]  # one codec throughout
    assert not verify(tmp_path / "ds").findings


@pytest.fixture
def x264_that_fails_mid_episode(tmp_path: Path) -> EncoderConfig:
    """libx264 writing its first-pass statistics to /dev/full: a real encode error after ~35 frames.

    x264 writes one stats line per frame into a stdio buffer; when the 4 KiB buffer is flushed to
    /dev/full the write fails and x264_encoder_encode returns an error ("ratecontrol_end: stats
    file could not be written to"). It writes `<stats>.temp` and renames it to `<stats>` when it
    closes; a folder named `<stats>` makes that rename fail, so the link survives and every
    episode's encoder writes to /dev/full again. An episode shorter than ~35 frames closes its
    encoder before the buffer is flushed, and x264 ignores that last error.
    """
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    stats = tmp_path / "x264-stats"
    stats.mkdir()
    (tmp_path / "x264-stats.temp").symlink_to("/dev/full")
    return EncoderConfig(vcodec="h264", preset="ultrafast", extra_options={"x264-params": f"pass=1:stats={stats}"})


def test_an_encoder_failing_mid_episode_falls_back_without_losing_a_frame(tmp_path, x264_that_fails_mid_episode,
                                                                          caplog):
    lengths = [20, 60, 25]
    root = tmp_path / "ds"
    with caplog.at_level(logging.WARNING, logger="streamrec"):
        reports = record(root, lengths, encoder=x264_that_fails_mid_episode)
    check_identity(root, lengths)  # every row of every episode shows its own frame, decoded back
    for key in CAMS:
        assert [r.cameras[key].encoder for r in reports] == ["libx264", "libsvtav1", "libsvtav1"]
        assert reports[0].cameras[key].fallbacks == reports[2].cameras[key].fallbacks == ()
        (fallback,) = reports[1].cameras[key].fallbacks
        assert (fallback.failed, fallback.replacement) == ("libx264", "libsvtav1")
        assert 0 < fallback.at_frame < lengths[1]
        assert "stats file could not be written" in fallback.error
        assert reports[1].cameras[key].frames == lengths[1]
        # The codec changed, so the camera's video went on in a new file, and the episode
        # metadata points there (check_identity decoded each episode from where it points).
        assert video_files(root, key) == [(0, 0), (0, 1), (0, 1)]
        assert [e[f"videos/{key}/from_timestamp"] for e in episodes(root)] == [0.0, 0.0, lengths[1] / FPS]
        assert f"{key}: libx264 failed at frame {fallback.at_frame}" in caplog.text
        assert "in a new file videos/" in caplog.text
    info = json.loads((root / "meta/info.json").read_text())
    for key in CAMS:
        stated = info["features"][key]["info"]
        assert stated["video.codec"] == "h264"  # the camera's first file
        assert stated["video.codec_by_file"] == {"chunk-000/file-000.mp4": "h264", "chunk-000/file-001.mp4": "av1"}
    assert not verify(root).findings  # the mixed codecs are declared, so verify has nothing to say


def test_without_the_declaration_verify_flags_a_file_of_another_codec(tmp_path, x264_that_fails_mid_episode):
    root = tmp_path / "ds"
    record(root, [20, 40], encoder=x264_that_fails_mid_episode)
    path = root / "meta/info.json"
    info = json.loads(path.read_text())
    del info["features"][CAMS[0]]["info"]["video.codec_by_file"]
    path.write_text(json.dumps(info))
    codes = [f.code for f in verify(root).findings]
    assert codes == ["video_codec"]
