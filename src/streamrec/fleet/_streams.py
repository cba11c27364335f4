"""What the fleet operations need to know of a source MP4: its stream parameters, and frame slots.

A frame's slot is its pts on the dataset's 1/fps grid (row k of an episode is slot from + k).
Sources written by other tools use other time bases (LeRobot's MP4s count in 1/15360 s), so a
pts is converted exactly and must land within the loader's tolerance of a slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from .._errors import DatasetError
from ..check._verify import TOLERANCE_S
from ..check._video import codec_id

STREAM_CODECS = ("av1", "h264", "hevc")
"""Codecs copied and decoded here: the ones LeRobot and streamrec write."""
TO_ANNEX_B = {"h264": "h264_mp4toannexb", "hevc": "hevc_mp4toannexb"}
"""MP4 stores H.264/HEVC with length-prefixed units and the parameter sets in the header; the
dataset's MP4 writer takes the packets an encoder makes (start codes, parameter sets in band),
so copied packets are turned back into that form. AV1 packets are the same in both."""


@dataclass(frozen=True, slots=True)
class StreamParams:
    """What must be equal for two sources' packets to share one MP4 (one stream, one header)."""

    codec: str
    """`av1`, `h264` or `hevc` (info.json's `video.codec`)."""
    width: int
    height: int
    pix_fmt: str
    extradata: bytes
    """The codec's configuration record (sequence header, SPS/PPS): differs with encoder settings."""


def stream_params(path: Path) -> StreamParams:
    """Read a source MP4's header (no frame is decoded).

    Raises:
        DatasetError: it cannot be opened, has no video, or holds a codec the fleet operations do not handle.
    """
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DatasetError(f"{path} has no video stream")
            context = container.streams.video[0].codec_context
            ids = {codec_id(name): name for name in STREAM_CODECS}
            codec = ids.get(context.codec.id)
            if codec is None:
                raise DatasetError(f"{path} holds {context.codec.name} video; merge and transcode handle "
                                   f"{list(STREAM_CODECS)}")
            return StreamParams(codec, context.width, context.height, context.pix_fmt or "",
                                bytes(context.extradata or b""))
    except (av.FFmpegError, OSError) as e:
        raise DatasetError(f"{path} cannot be opened as a video: {e}") from e


class Grid:
    """Frame slots of a stream's pts: integer arithmetic, once per packet of every copied file."""

    def __init__(self, time_base: Fraction, fps: int, path: Path | str) -> None:
        self._num = time_base.numerator * fps
        self._den = time_base.denominator
        self._slack = TOLERANCE_S * fps * self._den
        self._time_base = time_base
        self._fps = fps
        self._path = path

    def slot(self, pts: int) -> int:
        """The frame slot of a pts; raises DatasetError when it is off the 1/fps grid (the loader would fail too)."""
        num, den = pts * self._num, self._den
        k = (2 * num + den) // (2 * den)
        if abs(num - k * den) > self._slack:
            raise DatasetError(f"{self._path}: a frame at pts {pts} ({float(pts * self._time_base):.6f} s) is off "
                               f"the 1/{self._fps} s grid; run `streamrec verify` on the dataset")
        return k


def first_slot(from_s: float, fps: int, what: str) -> int:
    """An episode's first slot from its `from_timestamp`."""
    k = round(from_s * fps)
    if abs(from_s * fps - k) > TOLERANCE_S * fps:
        raise DatasetError(f"{what}: from_timestamp {from_s!r} is not on the 1/{fps} s grid")
    return k
