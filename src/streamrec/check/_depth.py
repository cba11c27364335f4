"""`verify`'s checks of a depth camera's MP4s, beyond those every video gets (frame counts, timestamps).

A depth file is read back as numbers, not looked at: a stream whose codec, pixel format or values differ from
what its info block declares makes a loader return wrong depths without any error. So each depth file is
checked, as it is decoded, against its feature's info block (`dataset._depth`):

- the block itself says how depth is stored, in a way a reader can undo (a known codec, a valid quantizer);
- the stream's codec and pixel format, declared and decoded, are the block's (gray12le codes, gray16le mm);
- in the 12-bit mode every value is a 12-bit code, and x265 wrote each keyframe losslessly (its settings are
  in every keyframe, in an SEI message, and say `lossless`): a lossy stream changes the codes, and the
  quantizer's round trip no longer bounds the error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import av

from .._errors import ConfigError
from ..dataset._depth import depth_config_from_info
from ..dataset._findings import Findings
from ..encode._depth import CODE_MAX

_X265_INFO = re.compile(rb"x265 \(build [^\x00]{1,4000}")
"""x265's settings, as it writes them into the SEI of every keyframe."""


@dataclass(slots=True)
class DepthScan:
    """What decoding a depth MP4 showed beyond its timestamps (filled by `check._video.decode`)."""

    declared_pix_fmt: str = ""
    decoded_pix_fmts: set[str] = field(default_factory=set)
    max_value: int = -1
    frames_over: int = 0
    """Frames holding a value above 4095 (none in a 12-bit stream)."""
    first_over: int | None = None
    lossless_keyframes: int = 0
    lossy_keyframes: int = 0
    """Keyframes whose x265 settings say no-lossless."""
    _frames: int = 0

    def stream(self, stream: av.video.stream.VideoStream) -> None:
        self.declared_pix_fmt = stream.codec_context.pix_fmt or stream.pix_fmt or ""

    def packet(self, packet: av.Packet) -> None:
        if not packet.is_keyframe or packet.size == 0:
            return
        match = _X265_INFO.search(bytes(packet))
        if match:
            words = match.group(0).decode("latin-1").split()
            if "lossless" in words:
                self.lossless_keyframes += 1
            else:
                self.lossy_keyframes += 1

    def frame(self, frame: av.VideoFrame) -> None:
        self.decoded_pix_fmts.add(frame.format.name)
        top = int(frame.to_ndarray().max())
        if top > CODE_MAX:
            self.frames_over += 1
            if self.first_over is None:
                self.first_over = self._frames
        self.max_value = max(self.max_value, top)
        self._frames += 1


def check_depth_video(findings: Findings, path: str, camera: str, info: Mapping[str, Any] | None,
                      codec_name: str, scan: DepthScan) -> None:
    """Add findings for a depth MP4 that does not match its feature's info block."""
    where = {"camera": camera, "file": path}
    try:
        config = depth_config_from_info(info or {})
    except ConfigError as e:
        findings.error("depth_info", f"{camera}: its info block does not say how depth is stored in a way a reader "
                       f"can undo: {e}", **where)
        return
    if codec_name != config.stream_codec:  # FFmpeg's hevc and ffv1 decoders carry the codec's name
        findings.error("depth_codec", f"{path} is {codec_name}, but info.json declares video.codec = "
                       f"{config.stream_codec!r}: a loader would read its values as {config.describe()}", **where)
    want = config.effective_pix_fmt
    decoded = sorted(scan.decoded_pix_fmts)
    if scan.declared_pix_fmt != want or (decoded and decoded != [want]):
        got = scan.declared_pix_fmt if scan.declared_pix_fmt != want else ", ".join(decoded)
        findings.error("depth_pix_fmt", f"{path} holds {got} pixels, but info.json declares video.pix_fmt = "
                       f"{want!r} ({'12-bit codes' if config.quantized else 'millimetres'})", **where)
    if config.quantized and scan.frames_over:
        findings.error("depth_codes", f"{path}: {scan.frames_over} frame(s) hold values up to {scan.max_value}, "
                       f"above {CODE_MAX} (first: frame {scan.first_over}); they are not the 12-bit codes "
                       "info.json's quantizer dequantizes", **where)
    if config.quantized and scan.lossy_keyframes:
        findings.error("depth_lossy", f"{path}: {scan.lossy_keyframes} keyframe(s) were encoded without x265's "
                       "lossless mode: their codes are not the ones recorded, so the depth returned is off by more "
                       "than the quantizer's round trip", **where)


def describe_depth(info: Mapping[str, Any] | None) -> str:
    """How a depth feature is stored, in a few words (`streamrec info`)."""
    try:
        return depth_config_from_info(info or {}).describe()
    except ConfigError as e:
        return f"unreadable depth info ({e})"
