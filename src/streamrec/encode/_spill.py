"""The image spill of the non-streaming path (`streaming_encoding=False`): one PNG per frame.

Runs inside the camera's encoder process, which in this mode writes each frame it takes from
its queue as a PNG instead of encoding it, so the capture loop hands frames off exactly as in
streaming mode (same bounded queue, same full-queue policy and counters) and PNG compression
runs in a process demoted below the capture loop. The video is encoded from the PNGs when the
episode (or a batch of episodes) is saved: see `_camera.CameraEncoder.encode_spilled`.

On disk, under the dataset's work folder:

    .streamrec/images/<camera>/open/frame-000000.png           the episode being recorded
    .streamrec/images/<camera>/episode-000007/frame-000000.png  saved, waiting to be encoded

A frame dropped at the queue has no file; the encoder fills its slot with the previous frame,
as in streaming mode. The recorder deletes an episode's folder once its video and metadata
are written, so a crash before then still finds the PNGs.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .._errors import WorkerError
from ..dataset._durable import fsync_dir
from ..dataset._layout import Layout
from ._depth import DepthFrames, DepthStreamError

PNG_COMPRESSION_LEVEL = 1
"""zlib level: level 1 writes a 640x480 frame in ~3.5 ms here; higher levels save little on
camera images and cost more CPU during capture."""


def _frame_name(slot: int) -> str:
    return f"frame-{slot:06d}.png"


class ImageSpill:
    """Writes the open episode's frames of one camera as PNG files."""

    def __init__(self, layout: Layout, camera: str, width: int, height: int, fps: int,
                 depth: DepthFrames | None = None) -> None:
        """`depth`: a depth camera's frames (16-bit PNGs of millimetres, see `_depth`); None for RGB."""
        self._layout = layout
        self.depth = depth
        self._camera = camera
        self._open = layout.open_images(camera)
        self._width = width
        self._height = height
        self._fps = fps
        self.frames = 0
        """Frames written to the open episode (fewer than its rows when the queue dropped some)."""
        # What a previous process left in `open/` was never saved: it is not an episode.
        shutil.rmtree(self._open, ignore_errors=True)
        self._open.mkdir(parents=True)

    def write(self, slot: int, array: np.ndarray, *, for_video: bool = True) -> av.VideoFrame | None:
        """Write the frame of `slot`; returns it as the video encoder takes it (a copy of `array`), or None
        without `for_video` (a depth frame's conversion is then skipped)."""
        # A still-image encoder holds no state between frames, so one context serves the episode.
        if self.frames == 0:
            self._codec = self._new_codec()
        depth = self.depth
        frame = av.VideoFrame.from_ndarray(array, format="rgb24") if depth is None else depth.png_frame(array)
        frame.pts = slot
        packets = self._codec.encode(frame)
        if len(packets) != 1:
            raise WorkerError(f"PNG encoder returned {len(packets)} packets for one frame")
        with open(self._open / _frame_name(slot), "wb") as f:
            f.write(bytes(packets[0]))
        self.frames += 1
        if depth is None:
            return frame
        return depth.to_frame(array) if for_video else None

    def open_frame_path(self, slot: int) -> Path:
        """Where the open episode's PNG of `slot` is (once written)."""
        return self._open / _frame_name(slot)

    def keep(self, episode_index: int) -> Path:
        """Close the open episode for good: every PNG synced to disk, the folder renamed."""
        for path in self._open.iterdir():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        target = self._layout.episode_images(self._camera, episode_index)
        if target.exists():  # left by a failed save of the same episode index
            shutil.rmtree(target)
        os.replace(self._open, target)
        fsync_dir(target.parent)
        self._open.mkdir()
        self.frames = 0
        return target

    def discard(self) -> None:
        shutil.rmtree(self._open, ignore_errors=True)
        self._open.mkdir(parents=True)
        self.frames = 0

    def _new_codec(self) -> av.CodecContext:
        if self.depth is not None:
            return self.depth.png_codec(self._width, self._height, self._fps, PNG_COMPRESSION_LEVEL)
        codec = av.CodecContext.create("png", "w")
        codec.width = self._width
        codec.height = self._height
        codec.pix_fmt = "rgb24"
        # The frames written go on to the video encoder (see `_idle`), which
        # rescales their pts from the time base this encoder gives them: it must be the video's.
        codec.time_base = Fraction(1, self._fps)
        codec.options = {"compression_level": str(PNG_COMPRESSION_LEVEL)}
        codec.open()
        return codec


def read_spilled(folder: Path, first_slot: int = 0, depth: DepthFrames | None = None
                 ) -> Iterator[tuple[int, av.VideoFrame]]:
    """The PNGs of one saved episode as (slot, rgb24 frame), in slot order, from `first_slot`; a depth
    camera's as the frames its encoder takes."""
    decoder = av.CodecContext.create("png", "r")
    for path in sorted(folder.glob("frame-*.png")):
        slot = int(path.stem.split("-")[1])
        if slot >= first_slot:
            yield slot, read_png(path, decoder, depth)


def read_png(path: Path, decoder: av.CodecContext, depth: DepthFrames | None = None) -> av.VideoFrame:
    """One PNG as an rgb24 frame, through `decoder` (a PNG decoding context); a depth camera's 16-bit PNG
    as the frame its encoder takes."""
    packet = av.Packet(path.read_bytes())
    # Without the key flag FFmpeg's PNG decoder takes a packet as a change to the previous
    # picture (its inter-frame mode) and returns a mix of the two.
    packet.is_keyframe = True
    frames = decoder.decode(packet)
    if len(frames) != 1:
        raise WorkerError(f"{path}: not a readable PNG ({len(frames)} frames decoded)")
    frame = frames[0]
    if depth is not None:
        try:
            return depth.from_png(frame)
        except DepthStreamError as e:
            raise WorkerError(f"{path}: {e}") from e
    if frame.format.name != "rgb24":
        frame = frame.reformat(format="rgb24")
    # As a camera's array arrives in the streaming path (`VideoFrame.from_ndarray`). The decoder
    # marks its pictures full range, which made the conversion to the stream's yuv420p treat them
    # as full range in a limited-range stream (33 instead of 44-47 dB at 1280x720), and intra, which
    # made the encoder code every frame as a keyframe (twice the bytes).
    frame.color_range = 0  # unspecified
    frame.colorspace = 2  # unspecified
    frame.pict_type = 0  # none: the encoder decides
    return frame
