"""`EncoderConfig`: how each camera stream is encoded, checked against this FFmpeg build when built."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from .._errors import ConfigError
from . import _codecs

# SVT-AV1 prints a banner and its settings to stderr at every encoder open (once per episode and
# camera); keep its errors only, unless the user asked for something else.
os.environ.setdefault("SVT_LOG", "1")


@dataclass(frozen=True, slots=True, kw_only=True)
class EncoderConfig:
    """How each camera stream is encoded. Field names and defaults follow the reference docs.

    Example: `EncoderConfig(vcodec="libsvtav1", crf=30, g=2, preset=12, pix_fmt="yuv420p")`.
    How each field maps onto each encoder's own options is the table in `_codecs`.
    """

    vcodec: str = "libsvtav1"
    """Encoder: `libsvtav1` (alias `av1`), `h264` (`libx264`), `hevc` (`libx265`), a hardware encoder such as
    `h264_nvenc`, or `auto`: the first that works here, hardware first (see `streamrec probe`)."""
    pix_fmt: str = "yuv420p"
    """Pixel format of the encoded stream; frames arrive as rgb24 and are converted in the worker."""
    g: int | None = 2
    """Keyframe interval in frames. Small values make random access (training) cheap."""
    crf: int | float | None = 30
    """Constant quality; lower is better and bigger. Range depends on the encoder."""
    preset: int | str | None = None
    """Speed preset: -1..13 for libsvtav1, lower is slower and better (default 12; SVT-AV1 4.x runs 12 and 13
    as 11); a name such as `ultrafast`..`veryslow` for x264/x265 (default: theirs, medium)."""
    fast_decode: int = 0
    """0..2; SVT-AV1's fast-decode level, `tune=fastdecode` for x264/x265 when non-zero."""
    extra_options: Mapping[str, str] = field(default_factory=dict)
    """Further encoder AVOptions, merged last (e.g. `{"svtav1-params": "tune=0"}`)."""

    def __post_init__(self) -> None:
        _codecs.check(self)

    @property
    def encoder(self) -> str:
        """The FFmpeg encoder `vcodec` resolves to (`auto` until resolved for the cameras)."""
        return _codecs.encoder_name(self.vcodec)

    @property
    def stream_codec(self) -> str:
        """Codec of the encoded stream (`av1`, `h264`, `hevc`)."""
        if self.encoder == _codecs.AUTO:
            raise ConfigError("EncoderConfig.vcodec = 'auto' has no stream codec until it is resolved "
                              "for the cameras (DatasetRecorder.create does that)")
        return _codecs.ENCODERS[self.encoder].stream_codec

    @property
    def effective_preset(self) -> int | str | None:
        return _codecs.effective_preset(self)

    def codec_options(self, encoder_threads: int | None) -> dict[str, str]:
        """AVOptions for the encoder, as strings. `g` is set on the codec context, not here."""
        return _codecs.codec_options(self, encoder_threads)
