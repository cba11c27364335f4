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
    ({"preset": 20}, r"EncoderConfig.preset = 20: libsvtav1 accepts integers -2..13"),
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
