"""Depth cameras: how a depth frame is checked, stored in an MP4 and read back.

Two ways to store depth, chosen by `DepthEncoderConfig.vcodec`:

| vcodec | stream | what is stored | read back |
| --- | --- | --- | --- |
| `hevc` (default) | HEVC `gray12le`, x265 lossless | 12-bit codes (LeRobot's quantizer) | the quantizer's round trip |
| `ffv1` | FFV1 `gray16le` | the millimetres themselves | the same millimetres |

The default is what LeRobot 0.6.1 writes and reads: the same stream, the same quantizer (depth_min 0.01 m,
depth_max 10 m, shift 3.5 m, logarithmic) and the same `info` block in info.json (`dataset._depth`), so LeRobot's
loader turns the codes back into millimetres. The codec adds nothing to the quantizer's error: it is lossless, so
the codes decoded are the codes encoded. The exact mode is streamrec's own; LeRobot 0.6.1 refuses it.

Frames arrive as uint16 millimetres, (H, W, 1) or (H, W), or float32 metres (rounded to the millimetre in
`add_frame`); 0 means "no reading". They travel to the encoder process as uint16 millimetres, and the quantizer
runs there (`DepthFrames.to_frame`), so the capture loop pays for a copy, never for the logarithm. The PNG path
keeps millimetres in 16-bit PNGs and quantizes when it encodes them, so both paths store the same codes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

import av
import numpy as np

from .._errors import ConfigError, FrameError, StreamrecError

CODE_BITS = 12
CODE_MAX = (1 << CODE_BITS) - 1
"""Largest 12-bit code (4095): the code of depth_max."""
MM_PER_M = 1000.0
MM_MAX = 65535
"""Largest depth a uint16 millimetre frame holds (65.535 m)."""

QUANTIZED_CODEC = "hevc"
EXACT_CODEC = "ffv1"
_ENCODERS = {QUANTIZED_CODEC: "libx265", EXACT_CODEC: "ffv1"}
"""vcodec -> the FFmpeg encoder; the stream codec (info.json's `video.codec`) is the vcodec itself."""
_VCODEC_ALIASES = {"libx265": QUANTIZED_CODEC, "h265": QUANTIZED_CODEC}
_PIX_FMT = {QUANTIZED_CODEC: "gray12le", EXACT_CODEC: "gray16le"}

X265_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")
"""x265's presets, fastest first."""
DEFAULT_PRESET = "ultrafast"
"""x265's fastest preset, where LeRobot leaves x265's own (medium). Every preset is lossless, so the codes stored
are the same; medium makes files smaller (noisy synthetic depth by 16 %, MuJoCo depth by 2.3x) for four times
the CPU: 114 and 32 ms per 640x480 frame on one core here, against 29 and 8 for ultrafast with `_X265_FAST`
(benchmarks/results/depth_roundtrip.json), where a frame at 30 fps has 33 ms."""
_X265_FAST = "ctu=64:min-cu-size=32"
"""Added to ultrafast: 64x64 coding tree units split no finer than 32x32. Lossless coding of noisy depth spends
its time searching the finer splits, which save little: on 640x480 frames here this took 29 instead of 41 ms per
noisy synthetic frame for 4 % more bytes, and 8 instead of 11 ms per MuJoCo frame for 42 % more (41 instead of
29 MB per camera-minute). Noisy depth, as real stereo sensors give, is the case that must keep up."""
LEROBOT_CRF = 30
"""LeRobot's crf for depth; x265 ignores it in lossless mode, it is only recorded in info.json."""

_LOSSLESS = "lossless=1"
_FFV1_FIXED = {"level": "1"}
"""FFV1 version 1 keeps its parameters in every keyframe. Version 3, FFmpeg's default for gray16le here, keeps
them in codec extradata, which an MP4 stream created for muxing (`add_mux_stream`, as episodes are appended) does
not carry: such a file does not decode."""
_X265_FIXED = "log-level=error:open-gop=0"
"""x265 prints its settings at every encoder open (once per episode) unless told not to. Closed GOPs: with its
default open GOP every keyframe but the first is a CRA picture, and a reader that seeks to one (as LeRobot's
loader does) loses the pictures after it that refer back across it."""


@dataclass(frozen=True, slots=True)
class Quantizer:
    """LeRobot 0.6.1's depth quantizer: millimetres <-> 12-bit codes, on a log (or linear) scale.

    Depths at or below depth_min, 0 ("no reading") included, get code 0; depths at or above depth_max get 4095.
    """

    depth_min: float = 0.01
    """Metres at code 0."""
    depth_max: float = 10.0
    """Metres at code 4095."""
    shift: float = 3.5
    """Metres added before the logarithm: spreads the codes more evenly over the range."""
    use_log: bool = True

    def codes(self, mm: np.ndarray) -> np.ndarray:
        """12-bit codes (uint16, same shape) of uint16 millimetres; equal to LeRobot's `quantize_depth`."""
        if mm.dtype != np.uint16:
            raise TypeError(f"the quantizer takes uint16 millimetres, got {mm.dtype}")
        return _code_table(self)[mm]

    def mm(self, codes: np.ndarray, *, zero_is_no_reading: bool = False) -> np.ndarray:
        """uint16 millimetres of 12-bit codes, as LeRobot's loader returns them (`depth_output_unit="mm"`).

        Code 0 becomes depth_min (10 mm by default), as LeRobot returns it, so a "no reading" pixel reads back
        as depth_min; `zero_is_no_reading=True` returns 0 for it instead (nothing but depths below depth_min plus
        half a step, 10.6 mm by default, has code 0).
        """
        if codes.dtype != np.uint16:
            raise TypeError(f"the quantizer takes uint16 codes, got {codes.dtype}")
        if codes.size and int(codes.max()) > CODE_MAX:
            raise ValueError(f"code {int(codes.max())} is above {CODE_MAX}: not a 12-bit code")
        table = _mm_table(self)
        if zero_is_no_reading:
            table = table.copy()
            table[0] = 0
        return table[codes]

    def round_trip(self, mm: np.ndarray) -> np.ndarray:
        """What a reader gets back for uint16 millimetres `mm`."""
        return self.mm(self.codes(mm))

    def to_info(self) -> dict[str, Any]:
        return {"video.depth_min": self.depth_min, "video.depth_max": self.depth_max, "video.shift": self.shift,
                "video.use_log": self.use_log}


LEROBOT_QUANTIZER = Quantizer()


@lru_cache(maxsize=16)
def _code_table(q: Quantizer) -> np.ndarray:
    """Code of every uint16 millimetre value, computed the way LeRobot 0.6.1 quantizes a uint16 frame
    (float32 arithmetic in millimetres), so that the codes are the ones its writer stores."""
    mm = np.arange(MM_MAX + 1, dtype=np.float32)
    lo, hi, sh = (np.float32(v * MM_PER_M) for v in (q.depth_min, q.depth_max, q.shift))
    with np.errstate(invalid="ignore", divide="ignore"):
        if q.use_log:
            log_lo, log_hi = math.log(float(lo + sh)), math.log(float(hi + sh))
            norm = (np.log(mm + sh) - log_lo) / (log_hi - log_lo)
        else:
            norm = (mm - lo) / (hi - lo)
    # With a negative shift, depths below -shift have no logarithm: they are below depth_min, so code 0.
    norm = np.nan_to_num(norm, nan=0.0, neginf=0.0)
    table = np.rint(norm * CODE_MAX).clip(0, CODE_MAX).astype(np.uint16)
    table.setflags(write=False)
    return table


@lru_cache(maxsize=16)
def _mm_table(q: Quantizer) -> np.ndarray:
    """Millimetres of every code, computed as LeRobot 0.6.1's loader dequantizes (float32, clipped to
    [depth_min, depth_max], rounded half to even)."""
    codes = np.arange(CODE_MAX + 1, dtype=np.float32)
    if q.use_log:
        offset = math.log(q.depth_min + q.shift)
        scale = (math.log(q.depth_max + q.shift) - offset) / CODE_MAX
    else:
        offset, scale = q.depth_min, (q.depth_max - q.depth_min) / CODE_MAX
    metres = codes * np.float32(scale) + np.float32(offset)
    if q.use_log:
        metres = np.exp(metres) - np.float32(q.shift)
    metres = np.clip(metres, np.float32(q.depth_min), np.float32(q.depth_max))
    table = np.clip(np.rint(metres * np.float32(MM_PER_M)), 0, MM_MAX).astype(np.uint16)
    table.setflags(write=False)
    return table


@dataclass(frozen=True, slots=True, kw_only=True)
class DepthEncoderConfig:
    """How depth cameras are stored. Field names follow LeRobot 0.6.1's `DepthEncoderConfig`.

    `DepthEncoderConfig()` writes what LeRobot writes: HEVC `gray12le`, x265 lossless, 12-bit logarithmic codes
    (depth_min 0.01 m, depth_max 10 m, shift 3.5 m). `DepthEncoderConfig(vcodec="ffv1")` stores the millimetres
    exactly (FFV1 `gray16le`, no quantizer); LeRobot 0.6.1 cannot load that.

    A field left None (null) takes its mode's value (`effective_*`, `quantizer`); in the exact mode the
    quantizer's fields must stay None.
    """

    vcodec: str = QUANTIZED_CODEC
    """hevc: 12-bit codes, LeRobot's format (x265 lossless, gray12le). ffv1: the millimetres exactly (gray16le);
    LeRobot 0.6.1 cannot read it."""
    pix_fmt: str | None = None
    """null: gray12le for hevc, gray16le for ffv1 (the only one each mode takes)."""
    g: int | None = 2
    """Keyframe interval in frames, as for colour cameras."""
    crf: int | float | None = None
    """hevc: recorded in info.json (null: 30, LeRobot's) and without effect, since x265 is lossless. ffv1: null."""
    preset: str | None = None
    """hevc: an x265 preset; null: ultrafast, with 64x64 coding units split no finer than 32x32 (x265's own
    default, medium, takes 3-4x the CPU for smaller files). Every preset is lossless. ffv1: null."""
    fast_decode: int = 0
    """hevc: 1 or 2 adds x265's tune=fastdecode. ffv1: 0."""
    extra_options: Mapping[str, str] | None = None
    """Further encoder options. hevc: null is {x265-params: lossless=1}, and x265-params must keep lossless=1.
    ffv1: null is {}."""
    depth_min: float | None = None
    """hevc: metres at code 0 (null: 0.01); nearer depths and "no reading" (0) get code 0. ffv1: null."""
    depth_max: float | None = None
    """hevc: metres at code 4095 (null: 10.0); farther depths get code 4095. ffv1: null."""
    shift: float | None = None
    """hevc: metres added before the logarithm (null: 3.5). ffv1: null."""
    use_log: bool | None = None
    """hevc: logarithmic codes (null: true) or linear (false). ffv1: null."""

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> ConfigError:
            return ConfigError(f"DepthEncoderConfig.{name} = {getattr(self, name)!r}: {rule}")

        vcodec = _VCODEC_ALIASES.get(self.vcodec, self.vcodec) if isinstance(self.vcodec, str) else self.vcodec
        if vcodec not in _ENCODERS:
            raise bad("vcodec", f"must be {QUANTIZED_CODEC!r} (12-bit codes, LeRobot's format) or {EXACT_CODEC!r} "
                      "(exact 16-bit millimetres); depth is stored without loss, so no other codec is offered")
        object.__setattr__(self, "vcodec", vcodec)
        if self.pix_fmt is not None and self.pix_fmt != _PIX_FMT[vcodec]:
            raise bad("pix_fmt", f"{vcodec} stores {_PIX_FMT[vcodec]}; leave pix_fmt unset (null)")
        if self.g is not None and (isinstance(self.g, bool) or not isinstance(self.g, int) or self.g < 1):
            raise bad("g", "must be an integer >= 1 or None")
        if self.fast_decode not in (0, 1, 2) or isinstance(self.fast_decode, bool):
            raise bad("fast_decode", "must be 0, 1 or 2")
        options = self.extra_options
        if options is not None and (not isinstance(options, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in options.items())):
            raise bad("extra_options", "must map option names to strings")
        if self.quantized:
            self._check_quantized(bad)
        else:
            self._check_exact(bad)
        unknown = sorted(k for k in (options or {}) if k not in _encoder_options(self.encoder))
        if unknown:
            raise bad("extra_options", f"{self.encoder} has no option(s) {unknown}; see `ffmpeg -h "
                      f"encoder={self.encoder}`")

    def _check_quantized(self, bad: Any) -> None:
        crf = self.crf
        if crf is not None and (isinstance(crf, bool) or not isinstance(crf, (int, float)) or not 0 <= crf <= 51):
            raise bad("crf", "must be a number 0..51 (x265 ignores it: the stream is lossless)")
        if self.preset is not None and self.preset not in X265_PRESETS:
            raise bad("preset", f"must be null ({DEFAULT_PRESET}) or one of {X265_PRESETS}")
        if self.extra_options is not None and _LOSSLESS not in self.extra_options.get("x265-params", "").split(":"):
            raise bad("extra_options", f"depth codes must be stored without loss: x265-params must contain "
                      f"{_LOSSLESS!r}, e.g. {{'x265-params': {_LOSSLESS!r}}}")
        for name in ("depth_min", "depth_max", "shift"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
                raise bad(name, "must be a finite number of metres")
        if self.use_log is not None and not isinstance(self.use_log, bool):
            raise bad("use_log", "must be true (logarithmic codes) or false (linear)")
        q = self.quantizer
        assert q is not None
        if not 0 <= q.depth_min < q.depth_max:
            raise bad("depth_min", f"must be >= 0 and below depth_max ({q.depth_max!r} m)")
        if q.depth_max * MM_PER_M > MM_MAX:
            raise bad("depth_max", f"must be at most {MM_MAX / MM_PER_M} m, the most a uint16 millimetre frame holds")
        if q.use_log and q.depth_min + q.shift <= 0:
            raise bad("shift", f"depth_min + shift must be > 0 for logarithmic codes (depth_min = {q.depth_min})")

    def _check_exact(self, bad: Any) -> None:
        rules = {"crf": "FFV1 has no quality setting: it is always lossless", "preset": "FFV1 has no speed preset",
                 "depth_min": "the exact mode stores millimetres, not codes: it has no quantizer",
                 "depth_max": "the exact mode has no quantizer", "shift": "the exact mode has no quantizer",
                 "use_log": "the exact mode has no quantizer"}
        for name, rule in rules.items():
            if getattr(self, name) is not None:
                raise bad(name, f"must be null for {EXACT_CODEC} (the exact mode): {rule}")
        if self.fast_decode:
            raise bad("fast_decode", f"must be 0 for {EXACT_CODEC} (FFV1 has no such tuning)")
        if (self.extra_options or {}).get("level", "1") != "1":
            raise bad("extra_options", "FFV1 level must stay 1: other levels keep their parameters in codec "
                      "extradata, which the MP4 streams episodes are appended to do not carry")

    # -- what the fields resolve to ---------------------------------------------------------------

    @property
    def quantized(self) -> bool:
        """True: 12-bit codes (the quantizer's round trip); False: exact millimetres."""
        return self.vcodec == QUANTIZED_CODEC

    @property
    def encoder(self) -> str:
        """The FFmpeg encoder (`libx265`, `ffv1`)."""
        return _ENCODERS[self.vcodec]

    @property
    def stream_codec(self) -> str:
        """Codec of the stream (`hevc`, `ffv1`), as info.json's `video.codec` names it."""
        return self.vcodec

    @property
    def effective_pix_fmt(self) -> str:
        return _PIX_FMT[self.vcodec]

    @property
    def effective_crf(self) -> int | float | None:
        if not self.quantized:
            return None
        return LEROBOT_CRF if self.crf is None else self.crf

    @property
    def effective_preset(self) -> str | None:
        if not self.quantized:
            return None
        return self.preset or DEFAULT_PRESET

    @property
    def options(self) -> dict[str, str]:
        """`extra_options` with the mode's default."""
        if self.extra_options is not None:
            return dict(self.extra_options)
        return {"x265-params": _LOSSLESS} if self.quantized else {}

    @property
    def quantizer(self) -> Quantizer | None:
        """The 12-bit quantizer (None in the exact mode)."""
        if not self.quantized:
            return None
        d = LEROBOT_QUANTIZER
        return Quantizer(float(d.depth_min if self.depth_min is None else self.depth_min),
                         float(d.depth_max if self.depth_max is None else self.depth_max),
                         float(d.shift if self.shift is None else self.shift),
                         d.use_log if self.use_log is None else self.use_log)

    def describe(self) -> str:
        """One line for `streamrec info` and logs."""
        if not self.quantized:
            return "exact 16-bit mm (ffv1 gray16le)"
        q = self.quantizer
        scale = "log" if q.use_log else "linear"
        return f"12-bit {scale} codes {q.depth_min:g}-{q.depth_max:g} m (hevc gray12le lossless)"

    # -- the encoder --------------------------------------------------------------------------------

    def codec_options(self, encoder_threads: int | None = None, size: tuple[int, int] | None = None
                      ) -> dict[str, str]:
        """AVOptions for the encoder at `size` (width, height). `g` and no B-frames are set on the codec context
        (see `open_codec`)."""
        opts: dict[str, str] = {}
        if self.quantized:
            params = [_X265_FIXED]
            crf = self.effective_crf
            opts["crf"] = f"{crf:g}" if isinstance(crf, float) else str(crf)
            opts["preset"] = self.effective_preset
            if self.fast_decode:
                opts["tune"] = "fastdecode"
            if self.effective_preset == DEFAULT_PRESET and (size is None or min(size) >= 64):
                params.append(_X265_FAST)  # x265 refuses a 64x64 unit in a picture less than 64 high or wide
            if encoder_threads is not None:
                # x265's frame threads and wavefront pool, both held to the count asked for
                params += [f"pools={encoder_threads}", f"frame-threads={min(encoder_threads, 16)}"]
            for key, value in self.options.items():
                if key == "x265-params":
                    params.append(value)  # later entries win in x265's parser; lossless=1 is among them
                else:
                    opts[key] = value
            opts["x265-params"] = ":".join(params)
        else:
            opts.update(_FFV1_FIXED)
            if encoder_threads is not None:
                opts["threads"] = str(encoder_threads)
            opts.update(self.options)
        return opts

    def open_codec(self, width: int, height: int, fps: int, encoder_threads: int | None = None
                   ) -> av.VideoCodecContext:
        """An open encoder for one episode of a depth camera; takes frames from `DepthFrames.to_frame`."""
        codec = av.CodecContext.create(self.encoder, "w")
        codec.width = width
        codec.height = height
        codec.pix_fmt = self.effective_pix_fmt
        codec.time_base = Fraction(1, fps)
        codec.framerate = Fraction(fps, 1)
        if self.g is not None:
            codec.gop_size = self.g
        # x265's default structure holds frames back and emits them out of order: row k must be packet k.
        codec.max_b_frames = 0
        codec.options = self.codec_options(encoder_threads, (width, height))
        codec.open()
        return codec

    def faster(self) -> DepthEncoderConfig | None:
        """The next faster setting for a depth camera that cannot keep up, or None: a faster x265 preset, still
        lossless. Never another codec or a lossy setting: adapting to overload must not change the depth a
        dataset returns."""
        if not self.quantized:
            return None
        now = X265_PRESETS.index(self.effective_preset)
        if now == 0:
            return None
        return DepthEncoderConfig(vcodec=self.vcodec, g=self.g, crf=self.crf, preset=X265_PRESETS[now - 1],
                                  fast_decode=self.fast_decode, extra_options=self.extra_options,
                                  depth_min=self.depth_min, depth_max=self.depth_max, shift=self.shift,
                                  use_log=self.use_log)

    def same_stream(self, other: DepthEncoderConfig) -> list[tuple[str, Any, Any]]:
        """(setting, mine, other's) of every setting that changes what a reader gets back."""
        pairs = (("video.codec", self.vcodec, other.vcodec), ("pix_fmt", self.effective_pix_fmt,
                 other.effective_pix_fmt), ("quantizer", self.quantizer, other.quantizer))
        return [p for p in pairs if p[1] != p[2]]


@lru_cache(maxsize=4)
def _encoder_options(encoder: str) -> frozenset[str]:
    options = av.CodecContext.create(encoder, "w").supported_options
    return frozenset(o.name for o in (*options.generic, *options.private))


# -- incoming frames -------------------------------------------------------------------------------


def frame_to_mm(feature: str, frame: Any, height: int, width: int) -> np.ndarray:
    """One depth frame as (H, W, 1) uint16 millimetres, checked: what the camera's queue takes.

    Takes uint16 millimetres, (H, W, 1) or (H, W), returned as they are (a view, no copy), or float32 metres,
    converted (rounded to the nearest millimetre: float32 carries a depth of 10 m to about 1 µm). 0 is "no
    reading" and stays 0.

    Raises:
        FrameError: wrong type, dtype or shape, a negative, NaN or infinite depth, or metres beyond 65.535 m;
            the message names the feature, what was expected and what came.
    """
    expected = f"uint16 millimetres or float32 metres of shape ({height}, {width}, 1) or ({height}, {width})"
    if not isinstance(frame, np.ndarray):
        raise FrameError(f"add_frame(): {feature!r} must be a numpy array of {expected}, got {type(frame).__name__}")
    if frame.shape not in ((height, width, 1), (height, width)):
        raise FrameError(f"add_frame(): {feature!r} must be {expected}, got shape {frame.shape} ({frame.dtype})")
    if frame.dtype == np.uint16:
        # The very array when it has the queue's shape: a buffer from frame_buffer() then goes without a copy.
        return frame if frame.ndim == 3 else frame.reshape(height, width, 1)
    if frame.dtype != np.float32:
        hint = "; use float32 for metres" if frame.dtype.kind == "f" else "; use uint16 for millimetres"
        raise FrameError(f"add_frame(): {feature!r} must be {expected}, got dtype {frame.dtype}{hint}")
    lowest, highest = float(frame.min()), float(frame.max())  # NaN propagates into both
    if math.isnan(lowest) or math.isnan(highest):
        raise FrameError(f"add_frame(): {feature!r}: depth has NaN pixels; expected metres >= 0, with 0 for no "
                         "reading")
    if lowest < 0:
        raise FrameError(f"add_frame(): {feature!r}: depth has a negative value ({lowest} m); expected metres >= 0, "
                         "with 0 for no reading")
    if highest >= (MM_MAX + 0.5) / MM_PER_M:
        raise FrameError(f"add_frame(): {feature!r}: depth {highest} m is beyond {MM_MAX / MM_PER_M} m, the most "
                         "uint16 millimetres hold; use 0 for no reading")
    mm = np.multiply(frame, np.float32(MM_PER_M), dtype=np.float32)
    np.rint(mm, out=mm)
    return mm.astype(np.uint16).reshape(height, width, 1)


# -- frames for the encoder, and PNGs ----------------------------------------------------------------

PNG_PIX_FMT = "gray16be"
"""PNG stores 16-bit samples big-endian; FFmpeg's PNG encoder takes them as gray16be."""


class DepthFrames:
    """A depth camera's frames on their way into its encoder, inside the encoder process.

    `to_frame` turns queued millimetres into what the encoder takes (12-bit codes in gray12le, or the millimetres
    in gray16le); the PNG path writes millimetres as 16-bit PNGs and turns them into encoder frames when it
    encodes them.
    """

    def __init__(self, config: DepthEncoderConfig) -> None:
        self.config = config
        self._quantizer = config.quantizer

    def stored(self, mm: np.ndarray) -> np.ndarray:
        """(H, W) uint16 pixels the stream holds for (H, W[, 1]) uint16 millimetres."""
        mm = mm.reshape(mm.shape[0], mm.shape[1])
        return self._quantizer.codes(mm) if self._quantizer is not None else mm

    def to_frame(self, mm: np.ndarray) -> av.VideoFrame:
        """The encoder's input for uint16 millimetres (a copy: the queue buffer can go back at once)."""
        return av.VideoFrame.from_ndarray(np.ascontiguousarray(self.stored(mm)), format=self.config.effective_pix_fmt)

    def png_codec(self, width: int, height: int, fps: int, compression_level: int) -> av.VideoCodecContext:
        codec = av.CodecContext.create("png", "w")
        codec.width = width
        codec.height = height
        codec.pix_fmt = PNG_PIX_FMT
        codec.time_base = Fraction(1, fps)
        codec.options = {"compression_level": str(compression_level)}
        codec.open()
        return codec

    @staticmethod
    def png_frame(mm: np.ndarray) -> av.VideoFrame:
        """A 16-bit PNG encoder's input for uint16 millimetres. The PNG holds millimetres, not codes: the PNG
        path quantizes when it encodes, so both paths store the same codes."""
        return av.VideoFrame.from_ndarray(np.ascontiguousarray(mm.reshape(mm.shape[0], mm.shape[1])),
                                          format=PNG_PIX_FMT)

    def from_png(self, frame: av.VideoFrame) -> av.VideoFrame:
        """The encoder's input for a decoded 16-bit depth PNG."""
        return self.to_frame(png_mm(frame))


def png_mm(frame: av.VideoFrame) -> np.ndarray:
    """(H, W) uint16 millimetres of a decoded 16-bit greyscale PNG."""
    if frame.format.name not in ("gray16be", "gray16le"):
        raise DepthStreamError(f"a {frame.format.name} PNG where a depth PNG is 16-bit greyscale")
    return frame.to_ndarray()


# -- reading back ------------------------------------------------------------------------------------


class DepthStreamError(StreamrecError, RuntimeError):
    """A depth file is not what the format needs (pixel format, 12-bit codes)."""


def iter_depth_frames(path: Path) -> Iterator[tuple[float, str, np.ndarray]]:
    """(time in s, decoded pixel format, (H, W) uint16 pixels) of each frame of a depth MP4, in order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            if frame.pts is None:
                raise DepthStreamError(f"{path}: a frame without pts")
            pixels = frame.to_ndarray()
            if pixels.dtype != np.uint16 or pixels.ndim != 2:
                raise DepthStreamError(f"{path}: decoded {frame.format.name} frames ({pixels.dtype} "
                                       f"{pixels.shape}); a depth stream is gray12le or gray16le")
            yield float(frame.pts * stream.time_base), frame.format.name, pixels


@dataclass(frozen=True, slots=True)
class DepthVideo:
    """A depth MP4 decoded whole: its stream's facts and every frame's stored pixels (codes or millimetres)."""

    codec: str
    pix_fmt: str
    """Stream pixel format as the container declares it."""
    decoded_pix_fmt: str
    width: int
    height: int
    times_s: list[float] = field(repr=False)
    pixels: list[np.ndarray] = field(repr=False)
    """Each frame as (H, W) uint16: 12-bit codes for hevc/gray12le, millimetres for ffv1/gray16le."""


def read_depth_video(path: Path) -> DepthVideo:
    """Decode a whole depth MP4 (small files: tests and benchmarks)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        codec, pix_fmt = stream.codec_context.name, stream.pix_fmt or ""
        width, height = stream.width, stream.height
    times, pixels, decoded = [], [], set()
    for t, fmt, array in iter_depth_frames(path):
        times.append(t)
        pixels.append(array)
        decoded.add(fmt)
    if len(decoded) > 1:
        raise DepthStreamError(f"{path}: frames decoded in several pixel formats {sorted(decoded)}")
    return DepthVideo(codec, pix_fmt, decoded.pop() if decoded else "", width, height, times, pixels)


def stored_to_mm(pixels: np.ndarray, config: DepthEncoderConfig) -> np.ndarray:
    """Millimetres of decoded pixels: dequantized codes, or the pixels themselves in the exact mode."""
    q = config.quantizer
    return q.mm(pixels) if q is not None else pixels
