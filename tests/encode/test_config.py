import pytest

from streamrec import ConfigError, EncoderConfig


def test_defaults_follow_the_reference():
    c = EncoderConfig()
    settings = (c.vcodec, c.pix_fmt, c.g, c.crf, c.effective_preset, c.fast_decode)
    assert settings == ("libsvtav1", "yuv420p", 2, 30, 12, 0)
    assert c.stream_codec == "av1"


@pytest.mark.parametrize("alias,encoder,stream", [("av1", "libsvtav1", "av1"), ("h264", "libx264", "h264"),
                                                   ("libx264", "libx264", "h264"), ("hevc", "libx265", "hevc")])
def test_aliases(alias, encoder, stream):
    c = EncoderConfig(vcodec=alias, preset=None)
    assert (c.encoder, c.stream_codec) == (encoder, stream)


@pytest.mark.parametrize("kwargs,message", [
    ({"vcodec": "vp9"}, r"EncoderConfig.vcodec = 'vp9': must be one of \("),
    ({"crf": 70}, r"EncoderConfig.crf = 70: libsvtav1 accepts 0..63"),
    ({"preset": 20}, r"EncoderConfig.preset = 20: libsvtav1 accepts integers -1..13"),
    ({"preset": -2}, r"EncoderConfig.preset = -2: libsvtav1 accepts integers -1..13"),
    ({"vcodec": "h264", "preset": 3}, r"EncoderConfig.preset = 3: libx264 accepts \('ultrafast'"),
    ({"pix_fmt": "rgb24"}, r"EncoderConfig.pix_fmt = 'rgb24': libsvtav1 accepts \['yuv420p', 'yuv420p10le'\]"),
    ({"g": 0}, r"EncoderConfig.g = 0: must be an integer >= 1 or None"),
    ({"fast_decode": 3}, r"EncoderConfig.fast_decode = 3: must be 0, 1 or 2"),
    ({"extra_options": {"bogus": "1"}}, r"libsvtav1 has no option\(s\) \['bogus'\]"),
])
def test_bad_encoder_settings_name_the_field(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        EncoderConfig(**kwargs)


def test_codec_options():
    opts = EncoderConfig(crf=28, fast_decode=1, extra_options={"svtav1-params": "tune=0"}).codec_options(2)
    assert opts["crf"] == "28" and opts["preset"] == "12"
    assert opts["svtav1-params"] == "pred-struct=1:fast-decode=1:lp=2:tune=0"
    h = EncoderConfig(vcodec="h264", preset="ultrafast", fast_decode=1).codec_options(3)
    assert h == {"crf": "30", "preset": "ultrafast", "tune": "fastdecode", "threads": "3"}


def test_auto_is_accepted_and_resolved_later():
    c = EncoderConfig(vcodec="auto")
    assert c.encoder == "auto"
    with pytest.raises(ConfigError, match=r"EncoderConfig.vcodec = 'auto' has no stream codec until it is resolved"):
        c.stream_codec  # noqa: B018
    with pytest.raises(ConfigError, match=r"EncoderConfig.g = 0: must be an integer >= 1 or None"):
        EncoderConfig(vcodec="auto", g=0)  # what does not depend on the encoder is still checked at once


def needs(encoder):
    from streamrec.encode._codecs import compiled_in

    return pytest.mark.skipif(not compiled_in(encoder), reason=f"this PyAV's FFmpeg has no {encoder}")


@pytest.mark.parametrize("kwargs,message", [
    pytest.param({"vcodec": "h264_nvenc", "preset": "p9"},
                 r"EncoderConfig.preset = 'p9': h264_nvenc accepts \(.*'p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7'\)",
                 marks=needs("h264_nvenc")),
    pytest.param({"vcodec": "h264_nvenc", "crf": 60}, r"EncoderConfig.crf = 60: h264_nvenc accepts 0..51",
                 marks=needs("h264_nvenc")),
    pytest.param({"vcodec": "av1_nvenc", "crf": 64}, r"EncoderConfig.crf = 64: av1_nvenc accepts 0..63.75",
                 marks=needs("av1_nvenc")),
    pytest.param({"vcodec": "h264_nvenc", "extra_options": {"crf": "20"}},
                 r"EncoderConfig.extra_options: h264_nvenc has no option\(s\) \['crf'\]", marks=needs("h264_nvenc")),
    pytest.param({"vcodec": "h264_qsv", "pix_fmt": "yuv444p"},
                 r"EncoderConfig.pix_fmt = 'yuv444p': h264_qsv accepts \['nv12', 'yuv420p'\]", marks=needs("h264_qsv")),
    pytest.param({"vcodec": "h264_qsv", "preset": "ultrafast"},
                 r"EncoderConfig.preset = 'ultrafast': h264_qsv accepts \('veryfast', 'faster'",
                 marks=needs("h264_qsv")),
    pytest.param({"vcodec": "h264_v4l2m2m", "preset": "fast"},
                 r"EncoderConfig.preset = 'fast': h264_v4l2m2m has no speed preset; leave preset unset \(None\)",
                 marks=needs("h264_v4l2m2m")),
    ({"vcodec": "libx264", "preset": 3}, r"EncoderConfig.preset = 3: libx264 accepts \('ultrafast'"),
    ({"vcodec": "av1", "crf": 64}, r"EncoderConfig.crf = 64: libsvtav1 accepts 0..63"),
])
def test_encoder_settings_are_checked_against_the_encoders_own_options(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        EncoderConfig(**kwargs)


def test_an_encoder_missing_from_the_build_is_named():
    from streamrec.encode._codecs import compiled_in

    missing = next((e for e in ("h264_vaapi", "h264_videotoolbox") if not compiled_in(e)), None)
    if missing is None:
        pytest.skip("this PyAV's FFmpeg has both VAAPI and VideoToolbox")
    with pytest.raises(ConfigError, match=rf"EncoderConfig.vcodec = '{missing}': this PyAV build has no encoder"):
        EncoderConfig(vcodec=missing)


@pytest.mark.parametrize("vcodec,crf,expected", [
    pytest.param("h264_nvenc", 28, {"rc": "constqp", "qp": "28", "preset": "p4", "threads": "2"},
                 marks=needs("h264_nvenc")),
    pytest.param("av1_nvenc", 30, {"rc": "constqp", "qp": "120", "preset": "p4", "threads": "2"},  # 0..255 qindex
                 marks=needs("av1_nvenc")),
    pytest.param("h264_qsv", 28, {"global_quality": "28", "preset": "veryfast", "threads": "2"},
                 marks=needs("h264_qsv")),
    pytest.param("hevc_v4l2m2m", 28, {"threads": "2"}, marks=needs("hevc_v4l2m2m")),  # no quality knob: a bitrate
    ("libx265", 28, {"crf": "28", "preset": "ultrafast", "threads": "2", "x265-params": "log-level=error:open-gop=0"}),
])
def test_crf_goes_to_each_encoders_own_quality_knob(vcodec, crf, expected):
    preset = {"h264_nvenc": "p4", "av1_nvenc": "p4", "h264_qsv": "veryfast", "libx265": "ultrafast"}.get(vcodec)
    assert EncoderConfig(vcodec=vcodec, crf=crf, preset=preset).codec_options(2) == expected


def test_videotoolbox_quality_runs_the_other_way():
    from streamrec.encode._codecs import _videotoolbox_quality

    # q:v 1..100, higher is better, times FFmpeg's lambda (118); crf: lower is better.
    assert [int(_videotoolbox_quality(c)) // 118 for c in (0, 23, 63)] == [100, 65, 5]


def test_extra_options_win():
    opts = EncoderConfig(vcodec="h264", preset="ultrafast", extra_options={"crf": "18", "x264-params": "ref=1"})
    assert opts.codec_options(None) == {"crf": "18", "preset": "ultrafast", "x264-params": "ref=1"}
