"""Decoding a dataset's MP4s for `verify`: every frame's pts, whether the file was cut short, the codec."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ._depth import DepthScan


@dataclass(slots=True)
class DecodedVideo:
    """What decoding one MP4 produced."""

    path: str
    opened: bool = False
    pts: np.ndarray | None = None
    """Decoded frames' pts in presentation order (int64)."""
    time_base: Fraction | None = None
    width: int = 0
    height: int = 0
    codec_id: int | None = None
    codec_name: str = ""
    header_frames: int = 0
    missing_pts: int = 0
    truncated: str | None = None
    """Why the file is known to be cut short, if it is."""
    error: str | None = None
    """The FFmpeg error that stopped opening or decoding, if any."""
    decoded_before_error: int = 0


def codec_id(name: str) -> int | None:
    """FFmpeg's id of a codec as info.json names it (`h264`, `av1`); None when FFmpeg has no decoder of that name.

    Decoders differ from the stream's codec name (`libdav1d` decodes `av1`), so streams are compared by id.
    """
    try:
        return av.codec.Codec(name, "r").id
    except (ValueError, av.FFmpegError):
        return None


def seconds(pts: int, time_base: Fraction) -> float:
    return float(Fraction(int(pts)) * time_base)


def grid(pts: np.ndarray, time_base: Fraction, fps: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Nearest frame slot k of each pts, and the exact remainder: t - k/fps = rem / (den * fps).

    Integer arithmetic, so "exactly on the grid" means exactly (rem == 0), not "close in float".
    """
    num = pts.astype(object) * (time_base.numerator * fps)  # Python ints: no overflow on long files
    den = time_base.denominator
    k = (2 * num + den) // (2 * den)
    rem = num - k * den
    return k.astype(np.int64), rem.astype(np.int64), den


def unmatched(times: np.ndarray, targets: np.ndarray, tolerance_s: float) -> np.ndarray:
    """Indices of targets with no time within `tolerance_s` (times sorted ascending)."""
    if not len(times):
        return np.arange(len(targets))
    i = np.searchsorted(times, targets)
    after = times[np.minimum(i, len(times) - 1)]
    before = times[np.maximum(i - 1, 0)]
    nearest = np.minimum(np.abs(after - targets), np.abs(before - targets))
    return np.flatnonzero(nearest > tolerance_s)


_TOP_LEVEL_BOXES = frozenset({"ftyp", "styp", "moov", "mdat", "moof", "mfra", "free", "skip", "wide", "sidx",
                               "uuid", "meta", "pdin"})
"""Top-level MP4 box types; a walk stops at anything else, which is left to FFmpeg to judge."""


def _mp4_truncation(path: Path) -> str | None:
    """Walk the top-level MP4 boxes; say why the file is cut short if a box runs past its end."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        offset = 0
        while offset + 8 <= size:
            f.seek(offset)
            header = f.read(16)
            box_size = int.from_bytes(header[:4], "big")
            kind = header[4:8].decode("latin-1")
            if kind not in _TOP_LEVEL_BOXES:
                return None
            if box_size == 1 and len(header) >= 16:
                box_size = int.from_bytes(header[8:16], "big")
            elif box_size == 0:  # the box runs to the end of the file
                return None
            if box_size < 8:
                return None  # not a box structure we understand; leave it to FFmpeg
            if offset + box_size > size:
                return (f"its '{kind}' box at byte {offset} declares {box_size} bytes, but the file ends after "
                        f"{size - offset} of them ({size} bytes in all); it was cut short (interrupted copy or "
                        "write, full disk)")
            offset += box_size
    return None


def decode(path: Path, name: str, depth: DepthScan | None = None) -> DecodedVideo:
    """Demux and decode the file's first video stream once, to the end; never raises for bad files.

    `depth`: a depth camera's file, whose packets and frames it also looks at (see `_depth`)."""
    video = DecodedVideo(path=name)
    try:
        video.truncated = _mp4_truncation(path)
    except OSError as e:
        video.error = str(e)
        return video
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as e:
        video.error = str(e)
        return video
    with container:
        if not container.streams.video:
            video.error = "it has no video stream"
            return video
        video.opened = True
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        video.time_base = stream.time_base
        video.width, video.height = stream.codec_context.width, stream.codec_context.height
        video.codec_id = stream.codec_context.codec.id
        video.codec_name = stream.codec_context.codec.name
        video.header_frames = stream.frames or 0
        if depth is not None:
            depth.stream(stream)
        pts: list[int] = []
        try:
            for packet in container.demux(stream):
                if depth is not None:
                    depth.packet(packet)
                for frame in packet.decode():
                    if depth is not None:
                        depth.frame(frame)
                    if frame.pts is None:
                        video.missing_pts += 1
                    else:
                        pts.append(frame.pts)
        except (av.FFmpegError, OSError) as e:
            video.error = str(e)
            video.decoded_before_error = len(pts)
        video.pts = np.array(pts, np.int64)
    return video
