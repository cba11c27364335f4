"""The encoders streamrec drives, and how `EncoderConfig`'s settings become each one's AVOptions.

Each encoder belongs to a family (SVT-AV1, x264, NVENC, ...). A family is one row of data saying
where each setting goes: `crf` goes to the family's own constant-quality knob, `preset` to its
speed preset, `encoder_threads` to its thread count, `fast_decode` to its decode-speed tuning,
plus the options it always gets (rate-control mode, low delay). Adding an encoder is adding a
row, not a branch. Everything is checked against the encoder's real AVOptions and pixel formats
in this FFmpeg build, so a bad setting fails when the config is built.

Settings shared by every encoder are set on the codec context, not here: `g` (gop_size) and no
B-frames (max_b_frames=0), so that frame k is always packet k, in presentation order.
"""

from __future__ import annotations

import dataclasses
import glob
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError

if TYPE_CHECKING:
    import av

    from ._config import EncoderConfig

AUTO = "auto"
SOFTWARE_LAST_RESORT = "libsvtav1"
"""What `auto` ends with, and what every other encoder finally falls back to."""

_PARAM_LISTS = frozenset({"svtav1-params", "x264-params", "x265-params"})
"""Options holding `key=value:key=value` lists: streamrec's entries and the user's are joined."""


def _text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True, slots=True)
class Knob:
    """Where one `EncoderConfig` setting goes: an AVOption, and how its value is written."""

    option: str
    text: Callable[[Any], str] = _text
    """The setting's value -> the option's text."""
    unless: Any = None
    """A value of the setting that leaves the option unset (e.g. fast_decode 0 for x264)."""


def _svt_param(name: str) -> Callable[[Any], str]:
    return lambda value: f"{name}={value}"


_QP2LAMBDA = 118
"""FFmpeg's FF_QP2LAMBDA: `-q:v N` is global_quality N * 118 with the qscale flag set."""


def _videotoolbox_quality(crf: float) -> str:
    # VideoToolbox's q:v runs 1..100 with higher meaning better, the opposite of crf. This line
    # puts crf 23 (x264's default) near q:v 65, a usual VideoToolbox setting, and crf 63 at 5.
    q = min(100.0, max(1.0, 100.0 - 1.5 * crf))
    return str(round(q * _QP2LAMBDA))


@dataclass(frozen=True, slots=True)
class Family:
    """Encoders that share their options: one row of the mapping table."""

    name: str
    platform: str
    """Where it runs, as `streamrec probe` shows it."""
    hardware: bool
    quality: Knob | None
    """Where `crf` goes; None: the family has no constant-quality mode (a bitrate is set instead)."""
    quality_range: tuple[float, float] | None = None
    """Values the quality knob takes, when its AVOption's own range does not say (global_quality)."""
    preset: Knob | None = Knob("preset")
    """None: the family has no speed preset."""
    threads: Knob = Knob("threads")
    fast_decode: Knob | None = None
    """None: no decode-speed tuning (hardware streams without B-frames are cheap to decode anyway)."""
    fixed: Mapping[str, str] = field(default_factory=dict)
    """Options always set, before everything else."""
    feed: Mapping[str, str] = field(default_factory=dict)
    """Stream pix_fmt -> the format frames are given in, for encoders that only take a twin layout
    (nv12 carries the same 4:2:0 samples as yuv420p)."""
    device: str | None = None
    """Hardware device type frames are uploaded to before encoding (VAAPI); None: system memory."""


SVT_AV1 = Family(
    "SVT-AV1", "software", False, quality=Knob("crf"),
    threads=Knob("svtav1-params", _svt_param("lp")),
    fast_decode=Knob("svtav1-params", _svt_param("fast-decode")),
    # Low-delay prediction (pred-struct=1): every frame is coded in display order. SVT-AV1's
    # default random-access structure sometimes emits a later frame first when several frames
    # wait in the encoder, and rows and frames are 1:1 only if frame k is packet k. It also
    # means no frames are held back, so an episode ends without a flush wait.
    fixed={"svtav1-params": "pred-struct=1"})
X264 = Family("x264", "software", False, quality=Knob("crf"),
              fast_decode=Knob("tune", lambda _: "fastdecode", unless=0))
# Closed GOPs: x265's default open GOP makes its later keyframes CRA pictures, and a decoder that
# starts at one (a loader seeking to a row) drops the pictures after it that refer back across it.
X265 = Family("x265", "software", False, quality=Knob("crf"),
              fast_decode=Knob("tune", lambda _: "fastdecode", unless=0),
              fixed={"x265-params": "log-level=error:open-gop=0"})
NVENC = Family("NVENC", "NVIDIA GPU", True, quality=Knob("qp"), fixed={"rc": "constqp"})
VAAPI = Family("VAAPI", "Intel/AMD GPU (VA-API)", True, quality=Knob("qp"), preset=None,
               fixed={"rc_mode": "CQP"}, feed={"yuv420p": "nv12"}, device="vaapi")
# Intelligent constant quality (ICQ): what QSV does with global_quality and no bitrate.
QSV = Family("QSV", "Intel GPU (Quick Sync)", True, quality=Knob("global_quality"), quality_range=(1, 51),
             feed={"yuv420p": "nv12"})
VIDEOTOOLBOX = Family("VideoToolbox", "macOS", True, quality=Knob("global_quality", _videotoolbox_quality),
                      quality_range=(0, 63), preset=None, fixed={"flags": "+qscale"})
# V4L2 memory-to-memory encoders (Raspberry Pi and other ARM boards) only take a bitrate.
V4L2M2M = Family("V4L2 M2M", "Raspberry Pi / ARM (V4L2)", True, quality=None, preset=None)

BITS_PER_PIXEL = 0.15
"""Bitrate of families without a quality knob: width x height x fps x this (~1.4 Mb/s at 640x480, 30 fps).
`extra_options={"b": "4M"}` overrides it."""


@dataclass(frozen=True, slots=True)
class Encoder:
    """One FFmpeg encoder streamrec can drive."""

    name: str
    stream_codec: str
    """Codec of the stream it produces, as info.json names it (`video.codec`)."""
    family: Family
    default_preset: int | str | None = None
    """Preset used when `EncoderConfig.preset` is None; None: the encoder's own default."""
    presets: tuple[str, ...] = ()
    """Named presets, for encoders whose preset AVOption is free text (x264, x265)."""
    preset_min: int | None = None
    """Lowest numbered preset, where the AVOption's minimum is not a preset (SVT-AV1's -2 means "unset")."""
    crf_scale: float = 1
    """crf x this = the quality knob's value. AV1 hardware encoders take a 0..255 quantizer
    index where SVT-AV1's crf runs 0..63."""
    quality_range: tuple[float, float] | None = None
    """Overrides the family's `quality_range`."""
    overload_presets: tuple[int | str, ...] = ()
    """Presets to step up through when the camera cannot keep up (`adapt_on_overload`), slowest first."""
    overload_codec: tuple[str, int | str, float] | None = None
    """After the fastest of `overload_presets`: (encoder, preset, crf offset) to switch to."""
    max_fps: int | None = None
    """Highest frame rate the encoder opens at (SVT-AV1 refuses more than 240)."""


_X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                 "veryslow", "placebo")
ENCODERS: dict[str, Encoder] = {e.name: e for e in (
    # Overload steps, measured on two 1280x720 footage cameras here (benchmarks/overload_steps.py):
    # SVT-AV1 preset 13 costs the same CPU as 12, so past 12 it goes to x264 veryfast, which took
    # 8.1 and 9.3 instead of 18.3 and 17.7 ms of CPU per frame; at crf 23 its PSNR (44.8 and 45.6 dB)
    # was within 0.6 dB of SVT-AV1's at crf 30 (45.4 and 43.9 dB).
    Encoder("libsvtav1", "av1", SVT_AV1, default_preset=12, preset_min=-1, overload_presets=(8, 10, 12),
            overload_codec=("libx264", "veryfast", -7), max_fps=240),
    Encoder("libx264", "h264", X264, presets=_X26X_PRESETS,
            overload_presets=("faster", "veryfast", "superfast", "ultrafast")),
    Encoder("libx265", "hevc", X265, presets=_X26X_PRESETS,
            overload_presets=("faster", "veryfast", "superfast", "ultrafast"),
            overload_codec=("libx264", "veryfast", 0)),
    Encoder("h264_nvenc", "h264", NVENC),
    Encoder("hevc_nvenc", "hevc", NVENC),
    Encoder("av1_nvenc", "av1", NVENC, crf_scale=4),
    Encoder("h264_vaapi", "h264", VAAPI),
    Encoder("hevc_vaapi", "hevc", VAAPI),
    Encoder("av1_vaapi", "av1", VAAPI, crf_scale=4),
    Encoder("h264_qsv", "h264", QSV),
    Encoder("hevc_qsv", "hevc", QSV),
    Encoder("av1_qsv", "av1", QSV, crf_scale=4, quality_range=(1, 255)),
    Encoder("h264_videotoolbox", "h264", VIDEOTOOLBOX),
    Encoder("hevc_videotoolbox", "hevc", VIDEOTOOLBOX),
    Encoder("h264_v4l2m2m", "h264", V4L2M2M),
    Encoder("hevc_v4l2m2m", "hevc", V4L2M2M),
)}
ALIASES = {"av1": "libsvtav1", "svtav1": "libsvtav1", "h264": "libx264", "hevc": "libx265", "h265": "libx265"}
VCODEC_CHOICES = (AUTO, *sorted({*ENCODERS, *ALIASES}))

_AUTO_ORDER = {
    "darwin": ("h264_videotoolbox", "hevc_videotoolbox"),
    "linux": ("h264_nvenc", "hevc_nvenc", "av1_nvenc", "h264_vaapi", "hevc_vaapi", "av1_vaapi",
              "h264_qsv", "hevc_qsv", "av1_qsv", "h264_v4l2m2m", "hevc_v4l2m2m"),
    "win32": ("h264_nvenc", "hevc_nvenc", "av1_nvenc", "h264_qsv", "hevc_qsv", "av1_qsv"),
}


def auto_order(platform: str | None = None) -> tuple[str, ...]:
    """Encoders `auto` tries on this platform, best first; always ends with the software one."""
    return (*_AUTO_ORDER.get(platform or sys.platform, ()), SOFTWARE_LAST_RESORT)


def encoder_name(vcodec: str) -> str:
    """The FFmpeg encoder a `vcodec` value names (aliases resolved); `auto` stays `auto`."""
    return ALIASES.get(vcodec, vcodec)


@cache
def compiled_in(name: str) -> bool:
    """Whether this PyAV's FFmpeg has the encoder (not whether it works here: see `_probe`)."""
    import av

    try:
        av.codec.Codec(name, "w")
    except Exception:  # noqa: BLE001 - any failure means "not usable in this build"
        return False
    return True


@cache
def _avoptions(name: str) -> dict[str, Any]:
    """AVOptions (generic and private) the encoder accepts, by name."""
    import av

    options = av.CodecContext.create(name, "w").supported_options
    return {o.name: o for o in (*options.generic, *options.private)}


@cache
def _pixel_formats(name: str) -> tuple[str, ...]:
    import av

    return tuple(f.name for f in av.codec.Codec(name, "w").video_formats or ())


def stream_formats(enc: Encoder) -> list[str] | None:
    """Stream pix_fmts the encoder can produce here; None when FFmpeg does not list them."""
    formats = _pixel_formats(enc.name)
    if enc.family.device is not None:
        return list(enc.family.feed)
    if not formats:
        return None
    return [f for f in formats if f in enc.family.feed.values() or f not in _HARDWARE_FORMATS] + \
        [stream for stream, fed in enc.family.feed.items() if fed in formats and stream not in formats]


_HARDWARE_FORMATS = frozenset({"cuda", "qsv", "vaapi", "videotoolbox", "amf", "d3d11", "drm_prime", "vulkan"})


def _quality_range(enc: Encoder, options: Mapping[str, Any]) -> tuple[float, float]:
    """crf values the encoder accepts: its quality knob's range, in crf units."""
    knob = enc.family.quality
    assert knob is not None
    lo, hi = enc.quality_range or enc.family.quality_range or (options[knob.option].min, options[knob.option].max)
    return max(lo, 0) / enc.crf_scale, hi / enc.crf_scale  # NVENC's qp uses -1 for "unset"


def check(config: EncoderConfig) -> None:
    """Check an EncoderConfig against the encoder's real options; raise ConfigError naming the field."""
    def bad(name: str, rule: str) -> ConfigError:
        return ConfigError(f"EncoderConfig.{name} = {getattr(config, name)!r}: {rule}")

    if config.vcodec not in VCODEC_CHOICES:
        raise bad("vcodec", f"must be one of {VCODEC_CHOICES}")
    if config.g is not None and (isinstance(config.g, bool) or not isinstance(config.g, int) or config.g < 1):
        raise bad("g", "must be an integer >= 1 or None")
    if config.fast_decode not in (0, 1, 2):
        raise bad("fast_decode", "must be 0, 1 or 2")
    if config.crf is not None and (isinstance(config.crf, bool) or not isinstance(config.crf, (int, float))):
        raise bad("crf", "must be a number or None")
    name = encoder_name(config.vcodec)
    if name == AUTO:
        # The rest is checked per candidate when `auto` is resolved at the cameras' size; a
        # candidate that cannot take the settings is skipped. The software encoder `auto` ends
        # with cannot be skipped, so its pixel formats bound `auto`'s.
        formats = stream_formats(ENCODERS[SOFTWARE_LAST_RESORT])
        if formats is not None and config.pix_fmt not in formats:
            raise bad("pix_fmt", f"vcodec=auto ends with {SOFTWARE_LAST_RESORT}, which accepts {formats}")
        return
    enc = ENCODERS[name]
    if not compiled_in(name):
        raise bad("vcodec", f"this PyAV build has no encoder {name!r} (its FFmpeg was built without it)")
    options = _avoptions(name)
    formats = stream_formats(enc)
    if formats is not None and config.pix_fmt not in formats:
        raise bad("pix_fmt", f"{name} accepts {formats}")
    knob = enc.family.quality
    if config.crf is not None and knob is not None:
        if knob.option not in options:
            raise bad("crf", f"{name} in this FFmpeg build has no AVOption {knob.option!r} to take it")
        lo, hi = _quality_range(enc, options)
        if not lo <= config.crf <= hi:
            raise bad("crf", f"{name} accepts {lo:g}..{hi:g}")
    if config.preset is not None:
        _check_preset(config, enc, options, bad)
    unknown = sorted(k for k in config.extra_options if k not in options)
    if unknown:
        raise ConfigError(f"EncoderConfig.extra_options: {name} has no option(s) {unknown}; "
                          f"see `ffmpeg -h encoder={name}` for the options it accepts")


def _check_preset(config: EncoderConfig, enc: Encoder, options: Mapping[str, Any],
                  bad: Callable[[str, str], ConfigError]) -> None:
    preset = config.preset
    knob = enc.family.preset
    if knob is None or knob.option not in options:
        raise bad("preset", f"{enc.name} has no speed preset; leave preset unset (None)")
    choices = enc.presets or tuple(c.name for c in options[knob.option].choices or ())
    if choices:
        if preset not in choices:
            raise bad("preset", f"{enc.name} accepts {choices}")
        return
    opt = options[knob.option]
    low = opt.min if enc.preset_min is None else max(opt.min, enc.preset_min)
    if isinstance(preset, bool) or not isinstance(preset, int) or not low <= preset <= opt.max:
        raise bad("preset", f"{enc.name} accepts integers {low:g}..{opt.max:g}")


def effective_preset(config: EncoderConfig) -> int | str | None:
    if config.preset is not None:
        return config.preset
    enc = ENCODERS.get(encoder_name(config.vcodec))
    return None if enc is None else enc.default_preset


def _speed(enc: Encoder, preset: int | str | None) -> float:
    """Higher is faster: SVT-AV1's numbers grow with speed, x264's names are listed fastest first."""
    if preset is None:
        return -math.inf  # the encoder's own default: every listed overload preset is taken as faster
    if isinstance(preset, str):
        return -enc.presets.index(preset) if preset in enc.presets else -math.inf
    return float(preset)


def faster_encoder(config: EncoderConfig) -> EncoderConfig | None:
    """The next faster setting for a camera that cannot keep up; None when there is none.

    A faster preset of the same encoder first, then the encoder's overload codec (with crf moved
    by its offset, and none of `extra_options`, which belong to the other encoder).
    """
    from ._config import EncoderConfig

    enc = ENCODERS.get(config.encoder)
    if enc is None:
        return None
    now = _speed(enc, config.effective_preset)
    for preset in enc.overload_presets:
        if _speed(enc, preset) > now:
            return dataclasses.replace(config, preset=preset)
    if enc.overload_codec is None or not compiled_in(enc.overload_codec[0]):
        return None
    name, preset, offset = enc.overload_codec
    try:
        crf = None if config.crf is None else max(0, config.crf + offset)
        return EncoderConfig(vcodec=name, preset=preset, crf=crf, g=config.g, pix_fmt=config.pix_fmt,
                             fast_decode=config.fast_decode)
    except ConfigError:  # e.g. a pix_fmt the other encoder lacks: no faster setting then
        return None


def faster_encoders(config: EncoderConfig) -> list[EncoderConfig]:
    """Every faster setting for `config`, slowest first (`faster_encoder` repeated)."""
    ladder = []
    while (config := faster_encoder(config)) is not None:
        ladder.append(config)
    return ladder


def codec_options(config: EncoderConfig, encoder_threads: int | None) -> dict[str, str]:
    """AVOptions for the encoder, as strings: the family's table row applied, extra_options last."""
    enc = ENCODERS[encoder_name(config.vcodec)]
    family = enc.family
    opts: dict[str, str] = {}

    def put(option: str, text: str) -> None:
        if option in _PARAM_LISTS and option in opts:
            opts[option] = f"{opts[option]}:{text}"  # later entries win inside the encoder's parser
        else:
            opts[option] = text

    for option, text in family.fixed.items():
        put(option, text)
    settings: tuple[tuple[Knob | None, Any], ...] = (
        (family.quality, None if config.crf is None else config.crf * enc.crf_scale),
        (family.preset, effective_preset(config)),
        (family.fast_decode, config.fast_decode),
        (family.threads, encoder_threads),
    )
    for knob, value in settings:
        if knob is not None and value is not None and value != knob.unless:
            put(knob.option, knob.text(value))
    for option, value in config.extra_options.items():
        put(option, str(value))
    return opts


def _render_node() -> str | None:
    nodes = sorted(glob.glob("/dev/dri/renderD*"))
    return nodes[0] if nodes else None


def open_codec(config: EncoderConfig, width: int, height: int, fps: int,
               encoder_threads: int | None) -> av.VideoCodecContext:
    """An open encoder for `config` at this size and rate: what the encoder process and the probe use."""
    import av

    enc = ENCODERS[encoder_name(config.vcodec)]
    family = enc.family
    hwaccel = None
    if family.device is not None:
        hwaccel = av.codec.hwaccel.HWAccel(family.device, device=_render_node(), allow_software_fallback=False)
    codec = av.CodecContext.create(enc.name, "w", hwaccel=hwaccel)
    codec.width = width
    codec.height = height
    codec.pix_fmt = family.feed.get(config.pix_fmt, config.pix_fmt)
    codec.time_base = Fraction(1, fps)
    codec.framerate = Fraction(fps, 1)
    if config.g is not None:
        codec.gop_size = config.g
    codec.max_b_frames = 0  # pts must equal decode order: one packet per row, on the k/fps grid
    options = codec_options(config, encoder_threads)
    if family.quality is None and "b" not in options:
        codec.bit_rate = round(width * height * fps * BITS_PER_PIXEL)
    codec.options = options
    codec.open()
    return codec


_DECODERS = {"av1": ("libdav1d", "av1")}
"""Decoders to read a stream back with, by stream codec; FFmpeg's native `av1` decoder needs a GPU."""


def open_decoder(stream_codec: str) -> av.CodecContext:
    """A software decoder for the stream an encoder produced (probes and fallbacks read their packets back)."""
    import av

    names = _DECODERS.get(stream_codec, (stream_codec,))
    for name in names[:-1]:
        try:
            return av.CodecContext.create(name, "r")
        except Exception:  # noqa: BLE001 - not in this build: try the next
            continue
    return av.CodecContext.create(names[-1], "r")


def error_text(error: BaseException, logs: Sequence[tuple[int, str, str]]) -> str:
    """FFmpeg's own messages first (what the user can act on), then the exception."""
    import av

    lines: list[str] = []
    for level, _, message in logs:
        text = message.strip()
        if level <= av.logging.ERROR and text and text not in lines:
            lines.append(text)
    what = getattr(error, "strerror", None) or str(error)
    return f"{'; '.join(lines)} ({type(error).__name__}: {what})" if lines else f"{type(error).__name__}: {error}"
