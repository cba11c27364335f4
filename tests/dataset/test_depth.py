"""Depth features in the dataset (`streamrec.dataset._depth`, `_features`): the info block LeRobot writes, the
config read back from one, depth statistics, and how a depth feature is declared."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers.depth import DEPTH, depth_frame
from helpers.frames import REPO
from streamrec import ConfigError, DepthEncoderConfig
from streamrec.dataset._depth import (
    EXACT_MARKER,
    DepthStatsSampler,
    depth_config_from_info,
    depth_feature_info,
    is_depth_info,
)
from streamrec.dataset._features import parse_features

LEROBOT_DEPTH = REPO / "tests" / "data" / "lerobot_depth"
"""Written by LeRobot 0.6.1's own writer (tests/data/make_lerobot_depth.py): a 48x64 depth camera at 30 fps."""


def lerobot_info() -> dict:
    return json.loads((LEROBOT_DEPTH / "meta/info.json").read_text())["features"][DEPTH]["info"]


def test_the_default_block_is_lerobots_but_the_preset():
    ours = depth_feature_info(DepthEncoderConfig(), height=48, width=64, fps=30)
    theirs = lerobot_info()
    assert list(ours) == list(theirs)  # same keys, same order
    assert {k: v for k, v in ours.items() if k != "video.preset"} == \
        {k: v for k, v in theirs.items() if k != "video.preset"}
    # LeRobot leaves x265's own preset (medium); streamrec's default is ultrafast (see encode._depth.DEFAULT_PRESET)
    assert (theirs["video.preset"], ours["video.preset"]) == (None, "ultrafast")
    assert depth_feature_info(DepthEncoderConfig(preset="medium"), height=48, width=64, fps=30)["video.preset"] \
        == "medium"


def test_the_exact_block_says_so_and_has_no_quantizer():
    info = depth_feature_info(DepthEncoderConfig(vcodec="ffv1"), height=48, width=64, fps=30)
    assert info["is_depth_map"] is True and info[EXACT_MARKER] is False
    assert (info["video.codec"], info["video.pix_fmt"], info["depth_unit"]) == ("ffv1", "gray16le", "mm")
    assert not any(k in info for k in ("video.depth_min", "video.depth_max", "video.shift", "video.use_log"))
    assert json.loads(json.dumps(info)) == info


def test_configs_come_back_from_their_blocks():
    lerobots = depth_config_from_info(lerobot_info())
    assert lerobots.quantizer == DepthEncoderConfig().quantizer and lerobots.effective_crf == 30
    assert lerobots.same_stream(DepthEncoderConfig()) == []
    for config in (DepthEncoderConfig(), DepthEncoderConfig(vcodec="ffv1"),
                   DepthEncoderConfig(preset="fast", depth_min=0.0, depth_max=4.0, use_log=False)):
        back = depth_config_from_info(depth_feature_info(config, height=8, width=8, fps=30))
        assert back.same_stream(config) == [] and back.effective_preset == config.effective_preset
    with pytest.raises(ConfigError, match="exact mode"):
        depth_config_from_info({**lerobot_info(), "video.codec": "ffv1"})
    with pytest.raises(ConfigError, match="depth_max"):
        depth_config_from_info({**lerobot_info(), "video.depth_max": 100.0})


def test_the_legacy_key_and_false_markers():
    assert is_depth_info({"is_depth_map": True}) and is_depth_info({"video.is_depth_map": True})
    assert not is_depth_info({"video.is_depth_map": False, "is_depth_map": False})
    assert not is_depth_info(None) and not is_depth_info("yes")


def test_stats_are_millimetres_of_the_sampled_pixels_with_lerobots_shapes():
    sampler = DepthStatsSampler(frame_stride=3)
    frames = [depth_frame(i)[..., None] for i in range(7)]
    for slot, frame in enumerate(frames):
        sampler.maybe_add(slot, frame)
    stats = sampler.stats()
    pixels = np.concatenate([f[::4, ::4].reshape(-1) for f in frames[::3]]).astype(np.float64)
    assert stats["count"].tolist() == [3]
    for name in ("min", "max", "mean", "std", "q01", "q50", "q99"):
        assert stats[name].shape == (1, 1, 1)
    assert stats["min"][0, 0, 0] == 0 and stats["max"][0, 0, 0] == pixels.max()  # holes count, as LeRobot's do
    assert stats["mean"][0, 0, 0] == pytest.approx(pixels.mean())
    assert stats["std"][0, 0, 0] == pytest.approx(pixels.std())
    assert stats["q50"][0, 0, 0] == np.sort(pixels)[int(np.ceil(0.5 * len(pixels))) - 1]


def test_lerobots_depth_stats_have_the_same_shape_and_unit():
    theirs = json.loads((LEROBOT_DEPTH / "meta/stats.json").read_text())[DEPTH]
    assert np.asarray(theirs["max"]).shape == (1, 1, 1) and theirs["max"][0][0][0] > 10000  # mm, not codes


def test_a_depth_feature_is_declared_as_lerobot_declares_one():
    features = parse_features({DEPTH: {"dtype": "video", "shape": [48, 64, 1], "info": {"is_depth_map": True}},
                               "rgb": {"dtype": "video", "shape": [48, 64, 3]}})
    assert [(f.name, f.depth, f.is_video) for f in features] == [(DEPTH, True, True), ("rgb", False, True)]
    assert features[0].to_json() == {"dtype": "video", "shape": [48, 64, 1], "names": ["height", "width", "channels"]}


@pytest.mark.parametrize(("spec", "says"), [
    ({"dtype": "video", "shape": [48, 64, 3], "info": {"is_depth_map": True}}, "a depth feature (info.is_depth_map) "
                                                                               "is [height, width, 1]"),
    ({"dtype": "video", "shape": [48, 64, 1]}, "with 'info': {'is_depth_map': True}"),
    ({"dtype": "video", "shape": [47, 64, 1], "info": {"is_depth_map": True}}, "must be even"),
])
def test_bad_depth_features_say_what_a_depth_feature_is(spec, says):
    with pytest.raises(ConfigError) as e:
        parse_features({DEPTH: spec})
    assert f"features[{DEPTH!r}]" in str(e.value) and says in str(e.value)
