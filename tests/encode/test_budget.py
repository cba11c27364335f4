"""The encoders' share of the machine, and the estimate a recording command says at the start."""

from __future__ import annotations

import logging
import math

import pytest

from streamrec import DatasetRecorder, EncoderConfig
from streamrec._platform import available_cpus
from streamrec.cli._status import say_encoding_need
from streamrec.encode._budget import ENCODE_SHARE, CameraNeed, EncodingNeed, camera_shares, estimate_need
from streamrec.encode._probe import probe


def test_shares_split_the_encoders_part_by_pixels():
    shares = camera_shares({"big": (720, 1280), "small": (360, 640)}, 30, cpus=10)
    assert math.isclose(sum(shares.values()), 10 * ENCODE_SHARE)
    assert math.isclose(shares["big"], 4 * shares["small"])


def _need(cost_ms: float, cameras: int, cpus: int) -> EncodingNeed:
    return EncodingNeed("libsvtav1", "12", 30, cpus,
                        tuple(CameraNeed(f"c{i}", 640, 480, cost_ms) for i in range(cameras)))


def test_need_is_over_past_the_encoders_share():
    assert math.isclose(_need(20, 3, 2).cpus_needed, 1.8)
    assert _need(20, 3, 2).over  # 1.8 > 1.6
    assert not _need(20, 2, 2).over  # 1.2


@pytest.mark.parametrize(("adapt", "policy", "says"), [
    (True, "drop", "Adaptive overload will move each camera"),
    (False, "drop", "Frames will be dropped"),
    (False, "block", "capture will wait for the encoders"),
])
def test_the_notice_says_what_will_happen(adapt, policy, says):
    text = _need(20, 3, 2).describe(adapt, policy)
    assert "need about 1.8 CPUs" in text and "this machine has 2" in text and "20.0 ms of CPU per frame" in text
    assert says in text and "To avoid it" in text


def test_estimate_uses_the_probes_figure_per_size():
    config = EncoderConfig(vcodec="libx264", preset="ultrafast")
    need = estimate_need({"a": (120, 160), "b": (120, 160), "c": (240, 320)}, 30,
                         {k: config for k in "abc"}, 1)
    small = probe(["libx264"], width=160, height=120, fps=30, encoder=config, encoder_threads=1).results[0]
    assert small.cached  # the estimate measured it once; this read the cache
    assert [c.cpu_ms_per_frame for c in need.cameras][:2] == [small.cpu_ms_per_frame] * 2
    assert need.cameras[2].cpu_ms_per_frame > 0 and (need.cameras[2].width, need.cameras[2].height) == (320, 240)
    assert need.cpus == available_cpus() and need.preset == "ultrafast"


def test_no_estimate_for_cameras_on_different_encoders():
    configs = {"a": EncoderConfig(vcodec="libx264"), "b": EncoderConfig()}
    assert estimate_need({"a": (120, 160), "b": (120, 160)}, 30, configs, None) is None


def test_a_recording_command_warns_at_the_start_when_the_cameras_need_more(tmp_path, caplog):
    config = EncoderConfig(vcodec="libx264", preset="medium")
    cost = probe(["libx264"], width=320, height=240, fps=30, encoder=config).results[0].cpu_ms_per_frame
    # A rate at which two cameras need twice the machine, whatever the machine.
    fps = math.ceil(2 * available_cpus() * 1000 / (2 * cost))
    features = {f"observation.images.{k}": {"dtype": "video", "shape": [240, 320, 3], "names": None} for k in "ab"}
    for rate, warned in ((fps, True), (1, False)):
        with DatasetRecorder.create(tmp_path / str(rate), rate, features, camera_encoder=config) as rec:
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="streamrec"):
                say_encoding_need(rec)
        notices = [r.getMessage() for r in caplog.records if "need about" in r.getMessage()]
        assert bool(notices) == warned, (rate, notices)
        if warned:
            assert "2 camera(s) at 320x240" in notices[0] and "libx264 preset medium" in notices[0]
