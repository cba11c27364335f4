"""`verify` and `summarize` on datasets with a depth camera: healthy in both modes, and each kind of damage a
depth file can have found with its own finding. Real recordings; the damaged files are real encodes."""

from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import av
import pytest

from helpers.depth import DEPTH, depth_features, depth_frame, depth_row
from streamrec import DatasetRecorder, DepthEncoderConfig, summarize, verify
from streamrec.dataset._layout import FileIndex
from streamrec.dataset._mp4 import PacketSpool, VideoFile
from streamrec.encode._depth import DepthFrames

LENGTHS = (6, 5)
FILE = f"videos/{DEPTH}/chunk-000/file-000.mp4"


def record(root: Path, mode: DepthEncoderConfig) -> Path:
    rec = DatasetRecorder.create(root, 30, depth_features(), depth_encoder=mode, queue_full_policy="block")
    ident = 0
    for n in LENGTHS:
        for _ in range(n):
            rec.add_frame(depth_row(ident))
            ident += 1
        rec.save_episode()
    rec.finalize()
    return root


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("depth-verify")
    return {"hevc": record(base / "hevc", DepthEncoderConfig()), "ffv1": record(base / "ffv1",
                                                                                 DepthEncoderConfig(vcodec="ffv1"))}


def copy(healthy: dict[str, Path], mode: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(healthy[mode], tmp_path / "ds"))


def rewrite_depth(root: Path, codec_name: str, pix_fmt: str, pixels, options: dict[str, str]) -> None:
    """Replace the depth MP4 by the same rows (same episodes, same timestamps) encoded another way:
    `pixels(mm)` gives what each frame holds."""
    path = root / FILE
    path.unlink()
    file = VideoFile(path, FileIndex(), {"libx265": "hevc"}.get(codec_name, codec_name), 30, 64, 48)
    ident = 0
    for e, n in enumerate(LENGTHS):
        codec = av.CodecContext.create(codec_name, "w")
        codec.width, codec.height, codec.pix_fmt = 64, 48, pix_fmt
        codec.time_base, codec.framerate, codec.gop_size, codec.max_b_frames = Fraction(1, 30), 30, 2, 0
        codec.options = options
        codec.open()
        spool = PacketSpool(root / f"spool-{e}.bin")
        for k in range(n):
            frame = av.VideoFrame.from_ndarray(pixels(depth_frame(ident)), format=pix_fmt)
            frame.pts = k
            spool.write(codec.encode(frame))
            ident += 1
        spool.write(codec.encode(None))
        file.append(spool)
        spool.discard()
    file.close()


def codes(report) -> set[str]:
    return {f.code for f in report.findings}


def test_healthy_depth_datasets_have_no_finding(healthy):
    for root in healthy.values():
        report = verify(root)
        assert report.healthy and not report.findings, report.findings
        assert report.cameras == (DEPTH, "observation.images.top")


def test_millimetres_where_12_bit_codes_are_declared(healthy, tmp_path):
    root = copy(healthy, "hevc", tmp_path)
    rewrite_depth(root, "ffv1", "gray16le", lambda mm: mm, {"level": "1"})
    report = verify(root)
    assert {"depth_codec", "depth_pix_fmt", "depth_codes"} <= codes(report) and not report.healthy
    by_code = {f.code: f for f in report.findings}
    assert "is ffv1, but info.json declares video.codec = 'hevc'" in by_code["depth_codec"].message
    assert "holds gray16le pixels, but info.json declares video.pix_fmt = 'gray12le'" in \
        by_code["depth_pix_fmt"].message
    assert "above 4095" in by_code["depth_codes"].message
    assert by_code["depth_codes"].camera == DEPTH and by_code["depth_codes"].file == FILE


def test_codes_where_millimetres_are_declared(healthy, tmp_path):
    root = copy(healthy, "ffv1", tmp_path)
    frames = DepthFrames(DepthEncoderConfig())
    rewrite_depth(root, "libx265", "gray12le", frames.stored,
                  {"preset": "ultrafast", "x265-params": "log-level=error:open-gop=0:lossless=1"})
    report = verify(root)
    assert {"depth_codec", "depth_pix_fmt"} <= codes(report) and not report.healthy
    assert "depth_codes" not in codes(report)  # codes are at most 4095, but the codec says what they are


def test_a_lossy_hevc_depth_stream_is_found(healthy, tmp_path):
    root = copy(healthy, "hevc", tmp_path)
    frames = DepthFrames(DepthEncoderConfig())
    # the same codes, gray12le, but x265 in its lossy mode: a loader would return other depths, without error
    rewrite_depth(root, "libx265", "gray12le", frames.stored,
                  {"preset": "ultrafast", "crf": "35", "x265-params": "log-level=error:open-gop=0"})
    report = verify(root)
    assert codes(report) == {"depth_lossy"}, report.findings
    finding = report.findings[0]
    assert "6 keyframe(s) were encoded without x265's lossless mode" in finding.message  # g=2: 3 + 3 keyframes


def test_an_info_block_no_reader_can_undo(healthy, tmp_path):
    root = copy(healthy, "hevc", tmp_path)
    info_path = root / "meta/info.json"
    info = json.loads(info_path.read_text())
    info["features"][DEPTH]["info"]["video.depth_max"] = 100.0
    info_path.write_text(json.dumps(info))
    report = verify(root)
    assert "depth_info" in codes(report)
    assert "depth_max" in next(f.message for f in report.findings if f.code == "depth_info")


def test_a_cut_depth_file_is_found_like_any_video(healthy, tmp_path):
    root = copy(healthy, "ffv1", tmp_path)
    path = root / FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    report = verify(root)
    assert not report.healthy and codes(report) & {"video_truncated", "video_unreadable", "frame_count_mismatch"}


def test_summarize_says_how_depth_is_stored(healthy):
    for mode, says in (("hevc", "12-bit log codes 0.01-10 m (hevc gray12le lossless)"),
                       ("ffv1", "exact 16-bit mm (ffv1 gray16le)")):
        summary = summarize(healthy[mode])
        by_key = {c.key: c for c in summary.cameras}
        assert by_key[DEPTH].depth == says and by_key[DEPTH].codec == mode
        assert by_key["observation.images.top"].depth is None
        assert summary.to_dict()["cameras"][0]["depth"] == says
        assert not summary.notes

