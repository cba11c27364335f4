"""The encoders' share of the machine, and the recorder's check of its settings at start."""

from __future__ import annotations

import json
import logging
import math

import av
import pytest

from helpers.frames import id_frame
from streamrec import ConfigError, DatasetRecorder, EncoderConfig, verify
from streamrec._platform import available_cpus
from streamrec.encode._budget import ENCODE_SHARE, EncodingNeed, StartPlan, camera_shares, measure_need

H, W = 240, 320
CAMERAS = ("observation.images.a", "observation.images.b")


def test_shares_split_the_encoders_part_by_pixels():
    shares = camera_shares({"big": (720, 1280), "small": (360, 640)}, 30, cpus=10)
    assert math.isclose(sum(shares.values()), 10 * ENCODE_SHARE)
    assert math.isclose(shares["big"], 4 * shares["small"])


def _need(ms: float, cameras: int, cpus: int, config: EncoderConfig | None = None) -> EncodingNeed:
    return EncodingNeed(config or EncoderConfig(), 30, cpus, {(480, 640): ms}, {(480, 640): cameras})


def test_need_against_the_share_and_the_machine():
    need = _need(20, 3, 2)
    assert math.isclose(need.cpus_needed, 1.8)
    assert need.over_share and not need.over_machine  # 1.8 > 1.6, < 2
    assert not _need(20, 2, 2).over_share  # 1.2
    assert _need(30, 3, 2).over_machine  # 2.7


def test_what_the_recorder_says_at_start():
    assert StartPlan(_need(20, 2, 2)).message(True, "drop") is None  # fits: nothing to say
    text = StartPlan(_need(20, 3, 2)).message(True, "drop")
    assert "3 x 640x480 at 30 fps need about 1.8 CPUs" in text and "libsvtav1 preset 12" in text
    assert "this machine has 2, about 1.6 of them for encoding" in text
    assert "moves to a faster setting from the next episode" in text
    assert "capture will wait" in StartPlan(_need(20, 3, 2)).message(False, "block")
    assert "Frames may be dropped" in StartPlan(_need(20, 3, 2)).message(False, "drop")
    x264 = EncoderConfig(vcodec="libx264", preset="veryfast", crf=23)
    text = StartPlan(_need(30, 3, 2), _need(4, 3, 2, x264)).message(True, "drop")
    assert "about 2.7 CPUs" in text and "no episode could keep every frame" in text
    assert "Starting with libx264 preset veryfast instead: about 0.4 CPUs by the same measure (fits)" in text


def test_need_is_measured_once_per_camera_size():
    config = EncoderConfig(vcodec="libx264", preset="ultrafast")
    need = measure_need({"a": (120, 160), "b": (120, 160), "c": (240, 320)}, 30, config, 1)
    assert need.cameras == {(120, 160): 2, (240, 320): 1}
    assert set(need.ms_per_frame) == {(120, 160), (240, 320)} and all(ms > 0 for ms in need.ms_per_frame.values())
    assert need.cpus == available_cpus()
    assert math.isclose(need.cpus_needed, (2 * need.ms_per_frame[(120, 160)] + need.ms_per_frame[(240, 320)]) * 0.03)


def _rate_beyond_the_machine(config: EncoderConfig) -> int:
    """A frame rate at which the two test cameras need twice this machine, whatever the machine."""
    ms = measure_need({k: (H, W) for k in CAMERAS}, 30, config, None).ms_per_frame[(H, W)]
    return math.ceil(2 * available_cpus() * 1000 / (2 * ms))


def _features() -> dict:
    return {k: {"dtype": "video", "shape": [H, W, 3], "names": None} for k in CAMERAS}


def test_beyond_the_machine_the_cameras_start_on_a_faster_setting(tmp_path, caplog):
    # x264 medium, so that the rate that overloads any machine stays one MP4 takes (SVT-AV1 stops
    # at 240 fps); its faster presets are the same ladder step as SVT-AV1's move to x264.
    medium = EncoderConfig(vcodec="libx264", preset="medium")
    fps = _rate_beyond_the_machine(medium)
    root = tmp_path / "ds"
    with caplog.at_level(logging.WARNING, logger="streamrec"):
        rec = DatasetRecorder.create(root, fps, _features(), camera_encoder=medium, queue_full_policy="block")
    said = [r.getMessage() for r in caplog.records if "Starting with" in r.getMessage()]
    assert len(said) == 1 and "no episode could keep every frame" in said[0], caplog.text
    for i in range(20):
        rec.add_frame({k: id_frame(i, H, W) for k in CAMERAS} | {"task": "t"})
    first = rec.save_episode()
    for i in range(20):
        rec.add_frame({k: id_frame(100 + i, H, W) for k in CAMERAS} | {"task": "t"})
    second = rec.save_episode()
    rec.finalize()
    for key in CAMERAS:
        steps = first.cameras[key].adaptations
        assert [(a.trigger, a.at_frame, a.effective) for a in steps][:1] == [("start", 0, "now")]
        assert steps[0].change.startswith("libx264 preset medium -> libx264 preset "), steps[0].change
        assert not [a for a in second.cameras[key].adaptations if a.trigger == "start"]  # said once
        assert first.cameras[key].encoder == "libx264"
        with av.open(str(first.cameras[key].video_file)) as c:
            assert c.streams.video[0].codec_context.name == "h264"
            assert len(list(c.decode(video=0))) >= 20
    assert verify(root).healthy


def test_svt_av1_beyond_its_frame_rate_is_refused_at_create(tmp_path):
    with pytest.raises(ConfigError, match=r"fps = 300: libsvtav1 .* opens at most 240 fps"):
        DatasetRecorder.create(tmp_path / "ds", 300, _features())
    assert not (tmp_path / "ds" / "meta").exists()
    DatasetRecorder.create(tmp_path / "ok", 300, _features(), camera_encoder=EncoderConfig(vcodec="h264")).finalize()


def test_without_adaptive_overload_the_settings_are_kept_and_the_risk_said(tmp_path, caplog):
    medium = EncoderConfig(vcodec="libx264", preset="medium")
    fps = _rate_beyond_the_machine(medium)
    with (caplog.at_level(logging.WARNING, logger="streamrec"),
          DatasetRecorder.create(tmp_path / "ds", fps, _features(), camera_encoder=medium,
                                 adapt_on_overload=False) as rec):
        assert rec.encoders == {k: "libx264" for k in CAMERAS}
    said = [r.getMessage() for r in caplog.records if "need about" in r.getMessage()]
    assert len(said) == 1 and "Frames may be dropped (adapt_on_overload is off)" in said[0]


def test_settings_that_fit_are_kept_without_a_word(tmp_path, caplog):
    with (caplog.at_level(logging.WARNING, logger="streamrec"),
          DatasetRecorder.create(tmp_path / "ds", 1, _features()) as rec):
        assert rec.encoders == {k: "libsvtav1" for k in CAMERAS}
    assert "need about" not in caplog.text


def test_a_cached_figure_from_a_busy_moment_is_measured_again_before_a_codec_change(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    config = EncoderConfig(vcodec="libx264", preset="ultrafast")
    sizes = {k: (H, W) for k in CAMERAS}
    true_ms = measure_need(sizes, 30, config, None).ms_per_frame[(H, W)]  # cached now
    cache = next((tmp_path / "cache" / "streamrec").glob("probe-*.json"))
    text = cache.read_text()
    busy = json.loads(text)
    for answer in busy["results"].values():
        answer["cpu_ms_per_frame"] *= 1000  # as if measured while the machine was swamped
    cache.write_text(json.dumps(busy))
    assert measure_need(sizes, 30, config, None).over_machine  # the cache alone says: beyond the machine
    with (caplog.at_level(logging.WARNING, logger="streamrec"),
          DatasetRecorder.create(tmp_path / "ds", 30, _features(), camera_encoder=config) as rec):
        assert rec.encoders == {k: "libx264" for k in CAMERAS}
    assert "Starting with" not in caplog.text and "need about" not in caplog.text
    again = measure_need(sizes, 30, config, None).ms_per_frame[(H, W)]  # the cache holds the new figure
    assert again < 100 * true_ms
    swamped = {answer["cpu_ms_per_frame"] for answer in busy["results"].values()}
    assert not swamped & {a["cpu_ms_per_frame"] for a in json.loads(cache.read_text())["results"].values()}
