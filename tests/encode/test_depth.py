"""The depth codec (`streamrec.encode._depth`): the quantizer against LeRobot's values, the settings, the frame
checks, and both storage modes through the real encoders (x265, FFV1) into streamrec's MP4 writer and back."""

from __future__ import annotations

import dataclasses
import math

import av
import numpy as np
import pytest

from helpers.depth import depth_frame
from streamrec import ConfigError, DepthEncoderConfig, FrameError
from streamrec.dataset._layout import FileIndex
from streamrec.dataset._mp4 import PacketSpool, VideoFile
from streamrec.encode._depth import (
    CODE_MAX,
    LEROBOT_QUANTIZER,
    X265_PRESETS,
    DepthFrames,
    Quantizer,
    frame_to_mm,
    png_mm,
    read_depth_video,
    stored_to_mm,
)

QUANTIZED = DepthEncoderConfig()
EXACT = DepthEncoderConfig(vcodec="ffv1")
Q = LEROBOT_QUANTIZER
ALL_MM = np.arange(65536, dtype=np.uint16)

# LeRobot 0.6.1's quantize_depth / dequantize_depth (numpy, output_unit="mm") on these values, default settings.
LEROBOT_CODES = {0: 0, 5: 0, 10: 0, 11: 1, 100: 77, 250: 201, 1000: 755, 4500: 2504, 9999: 4095, 10000: 4095,
                 20000: 4095, 65535: 4095}
LEROBOT_LINEAR_CODES = {0: 0, 11: 0, 100: 37, 250: 98, 1000: 406, 4500: 1840, 10000: 4095}
LEROBOT_MM = {0: 10, 1: 11, 100: 127, 1000: 1377, 2048: 3385, 4000: 9585, 4095: 10000}


def log_half_step_mm(mm: np.ndarray, q: Quantizer) -> np.ndarray:
    """Half a code's width at `mm`: the quantizer's worst error there before rounding to the millimetre."""
    shift = q.shift * 1000
    step = math.log((q.depth_max * 1000 + shift) / (q.depth_min * 1000 + shift)) / CODE_MAX
    return (mm + shift) * (math.exp(step / 2) - 1)


def write_episodes(path, config, episodes, fps=30, threads=None):
    """Each episode through a fresh encoder into a spool, appended to one MP4 as the encoder process does."""
    height, width = episodes[0][0].shape
    frames = DepthFrames(config)
    file = VideoFile(path, FileIndex(), config.stream_codec, fps, width, height, config)
    starts = []
    for e, episode in enumerate(episodes):
        codec = config.open_codec(width, height, fps, threads)
        spool = PacketSpool(path.with_name(f"spool-{e}.bin"))
        for k, mm in enumerate(episode):
            frame = frames.to_frame(mm)
            frame.pts = k
            spool.write(codec.encode(frame))
        spool.write(codec.encode(None))
        assert spool.packets == len(episode)
        starts.append(file.append(spool))
        spool.discard()
    file.close()
    return starts


# -- the quantizer ---------------------------------------------------------------------------------------------


def test_codes_equal_lerobots_on_reference_values():
    for mm, code in LEROBOT_CODES.items():
        assert int(Q.codes(np.array([mm], np.uint16))[0]) == code, mm
    linear = DepthEncoderConfig(use_log=False).quantizer
    for mm, code in LEROBOT_LINEAR_CODES.items():
        assert int(linear.codes(np.array([mm], np.uint16))[0]) == code, mm
    for code, mm in LEROBOT_MM.items():
        assert int(Q.mm(np.array([code], np.uint16))[0]) == mm, code


def test_quantizer_is_monotone_and_uses_every_code():
    codes = Q.codes(ALL_MM)
    assert codes.dtype == np.uint16
    assert np.all(np.diff(codes.astype(np.int32)) >= 0)
    assert set(np.unique(codes).tolist()) == set(range(CODE_MAX + 1))
    assert np.all(np.diff(Q.mm(np.arange(CODE_MAX + 1, dtype=np.uint16)).astype(np.int32)) >= 0)


def test_quantizer_clips_to_its_range():
    codes = Q.codes(ALL_MM)
    assert np.all(codes[:11] == 0)  # 0 (no reading) up to depth_min (10 mm)
    assert np.all(codes[10000:] == CODE_MAX)  # depth_max and beyond
    back = Q.round_trip(ALL_MM)
    assert back.min() == 10 and back.max() == 10000


def test_round_trip_error_is_within_half_a_code():
    mm = ALL_MM[10:10001].astype(np.float64)
    error = np.abs(Q.round_trip(ALL_MM)[10:10001] - mm)
    # Half a code, plus half a millimetre for rounding the result, plus float32's slack.
    assert np.all(error <= log_half_step_mm(mm, Q) + 0.5 + 1e-3)
    assert error.max() <= 2  # 2.2 mm at 10 m is half a code there
    linear = DepthEncoderConfig(use_log=False).quantizer
    half = (linear.depth_max - linear.depth_min) * 1000 / CODE_MAX / 2
    assert np.abs(linear.round_trip(ALL_MM)[10:10001] - mm).max() <= half + 0.5 + 1e-3


def test_no_reading_reads_back_as_depth_min_unless_asked():
    codes = Q.codes(np.zeros(3, np.uint16))
    assert codes.tolist() == [0, 0, 0]
    assert Q.mm(codes).tolist() == [10, 10, 10]  # as LeRobot's loader returns it
    assert Q.mm(codes, zero_is_no_reading=True).tolist() == [0, 0, 0]
    assert DepthEncoderConfig(depth_min=0.0).quantizer.round_trip(np.array([0, 1000], np.uint16))[0] == 0


def test_quantizer_refuses_what_it_does_not_take():
    with pytest.raises(TypeError, match="uint16"):
        Q.codes(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="4096"):
        Q.mm(np.array([4096], np.uint16))


# -- settings --------------------------------------------------------------------------------------------------


def test_defaults_follow_lerobot_but_the_preset():
    c = QUANTIZED
    assert (c.vcodec, c.effective_pix_fmt, c.g, c.effective_crf, c.fast_decode) == ("hevc", "gray12le", 2, 30, 0)
    assert c.options == {"x265-params": "lossless=1"}
    assert c.quantizer == Quantizer(0.01, 10.0, 3.5, True) == LEROBOT_QUANTIZER
    assert c.quantized and c.encoder == "libx265" and c.stream_codec == "hevc"
    assert c.effective_preset == "ultrafast"  # LeRobot leaves x265's medium: 3x the CPU (see DEFAULT_PRESET)
    opts = c.codec_options()
    assert opts["preset"] == "ultrafast" and "open-gop=0" in opts["x265-params"]
    assert opts["x265-params"].endswith("lossless=1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.vcodec = "ffv1"  # type: ignore[misc]


def test_exact_mode_has_no_quantizer():
    c = EXACT
    assert (c.vcodec, c.effective_pix_fmt, c.effective_crf, c.options, c.encoder) == ("ffv1", "gray16le", None, {},
                                                                                       "ffv1")
    assert c.quantizer is None and c.effective_preset is None and not c.quantized
    assert c.codec_options()["level"] == "1"


def test_switching_mode_by_replace_keeps_working():
    # What `--dataset.depth_encoder.vcodec=ffv1` does to the default: fields left None take the new mode's values.
    assert dataclasses.replace(QUANTIZED, vcodec="ffv1") == EXACT
    assert DepthEncoderConfig(vcodec="libx265") == QUANTIZED


@pytest.mark.parametrize(("kwargs", "field", "says"), [
    ({"vcodec": "h264"}, "vcodec", "'hevc'"),
    ({"vcodec": "hevc", "pix_fmt": "yuv420p12le"}, "pix_fmt", "gray12le"),
    ({"vcodec": "ffv1", "pix_fmt": "gray12le"}, "pix_fmt", "gray16le"),
    ({"extra_options": {"x265-params": "crf=20"}}, "extra_options", "lossless=1"),
    ({"extra_options": {"no-such-option": "1", "x265-params": "lossless=1"}}, "extra_options", "no-such-option"),
    ({"preset": "fastest"}, "preset", "ultrafast"),
    ({"crf": 99}, "crf", "0..51"),
    ({"g": 0}, "g", ">= 1"),
    ({"fast_decode": 3}, "fast_decode", "0, 1 or 2"),
    ({"depth_min": 2.0, "depth_max": 1.0}, "depth_min", "below depth_max"),
    ({"depth_max": 70.0}, "depth_max", "65.535"),
    ({"depth_min": 0.0, "shift": -0.5}, "shift", "> 0"),
    ({"depth_min": float("nan")}, "depth_min", "finite"),
    ({"use_log": 1}, "use_log", "true"),
    ({"vcodec": "ffv1", "depth_min": 0.01}, "depth_min", "no quantizer"),
    ({"vcodec": "ffv1", "crf": 0}, "crf", "lossless"),
    ({"vcodec": "ffv1", "preset": "fast"}, "preset", "preset"),
    ({"vcodec": "ffv1", "extra_options": {"level": "3"}}, "extra_options", "level must stay 1"),
])
def test_bad_settings_name_the_field(kwargs, field, says):
    with pytest.raises(ConfigError) as e:
        DepthEncoderConfig(**kwargs)
    assert f"DepthEncoderConfig.{field} = " in str(e.value)
    assert says in str(e.value)


def test_lossless_can_sit_among_other_x265_params():
    c = DepthEncoderConfig(extra_options={"x265-params": "rd=1:lossless=1"})
    assert c.codec_options()["x265-params"].endswith("rd=1:lossless=1")


def test_faster_settings_stay_lossless_and_never_change_codec():
    c = DepthEncoderConfig(preset="medium")
    seen = []
    while (c := c.faster()) is not None:
        assert c.vcodec == "hevc" and c.options["x265-params"] == "lossless=1"
        assert c.quantizer == LEROBOT_QUANTIZER
        seen.append(c.preset)
    assert seen == list(reversed(X265_PRESETS[:X265_PRESETS.index("medium")]))
    assert QUANTIZED.faster() is None  # ultrafast is the fastest
    assert EXACT.faster() is None


# -- incoming frames -------------------------------------------------------------------------------------------


def test_uint16_frames_pass_without_a_copy():
    frame = depth_frame(0)[..., None]
    assert frame_to_mm("d", frame, 48, 64) is frame  # a buffer from frame_buffer() goes on without a copy
    flat = frame_to_mm("d", frame[..., 0], 48, 64)
    assert flat.shape == (48, 64, 1) and np.shares_memory(flat, frame)


def test_float_metres_become_millimetres_and_zero_stays_zero():
    metres = np.array([[0.0, 0.0004, 0.0006, 1.2344, 1.2346, 65.535]], np.float32)
    assert frame_to_mm("d", metres, 1, 6)[..., 0].tolist() == [[0, 0, 1, 1234, 1235, 65535]]
    scene = depth_frame(1)
    assert np.array_equal(frame_to_mm("d", (scene / 1000).astype(np.float32)[..., None], 48, 64)[..., 0], scene)


@pytest.mark.parametrize(("frame", "says"), [
    (np.zeros((48, 64, 1), np.uint8), "dtype uint8; use uint16 for millimetres"),
    (np.zeros((48, 64, 1), np.int32), "dtype int32"),
    (np.zeros((48, 64, 1), np.float64), "dtype float64; use float32 for metres"),
    (np.zeros((48, 64, 3), np.uint16), "shape (48, 64, 3)"),
    (np.zeros((64, 48), np.uint16), "shape (64, 48)"),
    (np.full((48, 64), -0.5, np.float32), "negative value (-0.5 m)"),
    (np.full((48, 64), np.nan, np.float32), "NaN"),
    (np.full((48, 64), np.inf, np.float32), "beyond 65.535 m"),
    (np.full((48, 64), 70.0, np.float32), "beyond 65.535 m"),
    ([[0]], "got list"),
])
def test_bad_frames_name_the_feature_and_what_was_expected(frame, says):
    with pytest.raises(FrameError) as e:
        frame_to_mm("observation.images.wrist_depth", frame, 48, 64)
    message = str(e.value)
    assert "'observation.images.wrist_depth'" in message
    assert says in message


def test_a_negative_value_among_valid_ones_is_found():
    frame = (depth_frame(2) / 1000).astype(np.float32)
    frame[47, 63] = -0.001
    with pytest.raises(FrameError, match="negative"):
        frame_to_mm("d", frame, 48, 64)


# -- through the real encoders ---------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [QUANTIZED, EXACT], ids=["hevc-gray12le", "ffv1-gray16le"])
def test_several_episodes_round_trip_on_the_frame_grid(tmp_path, config):
    # 70x46: rows of 140 bytes, so the frames' planes are padded (their stride is not the width)
    episodes = [[depth_frame(100 * e + i, 46, 70) for i in range(n)] for e, n in enumerate((5, 1, 8))]
    episodes[2][3][0, :4] = [65535, 65534, 1, 10001]
    path = tmp_path / "depth.mp4"
    assert write_episodes(path, config, episodes) == [0, 5, 6]
    video = read_depth_video(path)
    sent = [f for frames in episodes for f in frames]
    pix_fmt = config.effective_pix_fmt
    assert (video.codec, video.pix_fmt, video.decoded_pix_fmt) == (config.vcodec, pix_fmt, pix_fmt)
    assert (video.width, video.height) == (70, 46)
    assert len(video.pixels) == len(sent) == 14
    assert video.times_s == pytest.approx([k / 30 for k in range(14)], abs=1e-6)
    for k, (pixels, mm) in enumerate(zip(video.pixels, sent)):
        if config.quantized:  # the codec adds nothing: the codes decoded are the codes encoded
            assert np.array_equal(pixels, Q.codes(mm)), k
            assert np.array_equal(stored_to_mm(pixels, config), Q.round_trip(mm)), k
        else:
            assert np.array_equal(pixels, mm), k


@pytest.mark.parametrize("config", [QUANTIZED, EXACT], ids=["hevc-gray12le", "ffv1-gray16le"])
def test_every_frame_is_found_after_a_seek(tmp_path, config):
    """As LeRobot's loader reads a row: seek to the keyframe at or before it, then decode on to its time."""
    episodes = [[depth_frame(10 * e + i) for i in range(3)] for e in range(3)]  # odd lengths: g=2
    path = tmp_path / "d.mp4"
    write_episodes(path, config, episodes)
    for k, mm in enumerate(f for frames in episodes for f in frames):
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            container.seek(round(k / 30 / stream.time_base) - 1, backward=True, any_frame=False, stream=stream)
            found = None
            for frame in container.decode(stream):
                t = float(frame.pts * stream.time_base)
                if abs(t - k / 30) < 1e-4:
                    found = frame.to_ndarray()
                if t >= k / 30:
                    break
        assert found is not None, f"frame {k} not decoded after seeking to it"
        assert np.array_equal(found, DepthFrames(config).stored(mm)), k


def test_the_default_codes_64x64_units_where_the_picture_allows_and_stays_lossless(tmp_path):
    assert "ctu=64:min-cu-size=32" in QUANTIZED.codec_options(None, (640, 480))["x265-params"]
    assert "ctu=64" not in QUANTIZED.codec_options(None, (64, 48))["x265-params"]  # x265 refuses it below 64
    assert "ctu=64" not in DepthEncoderConfig(preset="medium").codec_options(None, (640, 480))["x265-params"]
    frames = [depth_frame(i, 96, 128) for i in range(5)]
    write_episodes(tmp_path / "d.mp4", QUANTIZED, [frames[:3], frames[3:]])
    video = read_depth_video(tmp_path / "d.mp4")
    assert len(video.pixels) == 5 and all(np.array_equal(p, Q.codes(f)) for p, f in zip(video.pixels, frames))


@pytest.mark.parametrize("preset", ["medium", "veryfast"])
def test_slower_x265_presets_and_threads_stay_lossless(tmp_path, preset):
    config = DepthEncoderConfig(preset=preset, fast_decode=1)
    frames = [depth_frame(i) for i in range(4)]
    write_episodes(tmp_path / "d.mp4", config, [frames], threads=1)
    video = read_depth_video(tmp_path / "d.mp4")
    assert len(video.pixels) == len(frames) == 4
    assert all(np.array_equal(p, Q.codes(f)) for p, f in zip(video.pixels, frames))


def test_exact_mode_keeps_every_uint16_value(tmp_path):
    everything = ALL_MM.reshape(256, 256)
    write_episodes(tmp_path / "d.mp4", EXACT, [[everything, everything[::-1].copy()]])
    video = read_depth_video(tmp_path / "d.mp4")
    assert np.array_equal(video.pixels[0], everything)
    assert np.array_equal(video.pixels[1], everything[::-1])


# -- PNG path ---------------------------------------------------------------------------------------------------


def test_png_holds_millimetres_exactly_and_becomes_the_streaming_frame(tmp_path):
    depth = DepthFrames(QUANTIZED)
    encoder = depth.png_codec(70, 46, 30, 1)
    decoder = av.CodecContext.create("png", "r")
    mm = depth_frame(3, 46, 70)
    mm[0, :3] = [0, 65535, 1]
    packet = av.Packet(bytes(encoder.encode(depth.png_frame(mm))[0]))
    packet.is_keyframe = True
    png = decoder.decode(packet)[0]
    assert np.array_equal(png_mm(png), mm)
    assert np.array_equal(depth.from_png(png).to_ndarray(), depth.to_frame(mm).to_ndarray())


def test_png_is_a_standard_16_bit_greyscale_png(tmp_path):
    cv2 = pytest.importorskip("cv2")
    depth = DepthFrames(EXACT)
    mm = depth_frame(4)
    (tmp_path / "d.png").write_bytes(bytes(depth.png_codec(64, 48, 30, 1).encode(depth.png_frame(mm))[0]))
    read = cv2.imread(str(tmp_path / "d.png"), cv2.IMREAD_UNCHANGED)
    assert read.dtype == np.uint16 and np.array_equal(read, mm)
