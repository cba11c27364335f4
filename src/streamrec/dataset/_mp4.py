"""A camera's MP4 files: episodes appended to the open file, packets spooled on disk until it closes.

An encoder writes each episode's packets to a spool file (`PacketSpool`): RAM stays flat however
long the episode, and a discarded episode never reaches the MP4. At the end of the episode the
packets are copied into the camera's open MP4 (`VideoFile`) with their timestamps shifted by the
frames already in that file. Only that episode's packets are touched, so appending costs the same
for the 1st and the 500th episode; there is no B-frame, so dts = pts = the frame's slot.

The muxer may hold an open MP4's data in memory until the file is closed, so the spools of the
episodes in the open file are kept (synced to disk) until it is closed: with the episode journals
they are enough to rebuild the file after a crash (`rebuild_video_file`).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av

from .._errors import WorkerError
from ._layout import FileIndex, Layout

if TYPE_CHECKING:
    from ..encode._config import EncoderConfig

_RECORD = struct.Struct("<IqB")  # payload size, pts, keyframe flag


def _read_records(f: Any) -> Iterator[tuple[bytes, int, bool]]:
    while header := f.read(_RECORD.size):
        size, pts, key = _RECORD.unpack(header)
        yield f.read(size), pts, bool(key)


class PacketSpool:
    """Encoded packets of the open episode, appended to a flat file: size, pts, key flag, bytes."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._f = open(path, "w+b")  # noqa: SIM115 - lives as long as the episode
        self.packets = 0
        self.bytes = 0

    def write(self, packets: list[av.Packet]) -> None:
        for p in packets:
            # Rows and frames are 1:1 only if the encoder emits frame k as its k-th packet, in
            # presentation order (no reordering, so dts can equal pts). Say so if it does not.
            if p.pts != self.packets:
                raise WorkerError(f"encoder emitted the frame with pts {p.pts} as packet {self.packets} "
                                  f"(dts {p.dts}); streamrec needs packets in presentation order")
            self._f.write(_RECORD.pack(p.size, p.pts, p.is_keyframe))
            self._f.write(memoryview(p))  # the packet's own buffer: no copy of it
            self.packets += 1
            self.bytes += p.size

    def read(self) -> Iterator[tuple[bytes, int, bool]]:
        self._f.flush()
        self._f.seek(0)
        yield from _read_records(self._f)

    def keep(self, path: Path) -> None:
        """Close the spool for good: synced to disk, under its final name."""
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        os.replace(self.path, path)
        self.path = path

    def discard(self) -> None:
        self._f.close()
        self.path.unlink(missing_ok=True)


class VideoFile:
    """The camera's MP4 that episodes are being appended to; several episodes per file."""

    def __init__(self, path: Path, at: FileIndex, codec: str, fps: int, width: int, height: int,
                 settings: EncoderConfig | None = None, *, fragmented: bool = True) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.at = at
        self.settings = settings
        """The encoder settings that made its packets: one set per file, because one MP4 holds one
        set of stream parameters (a fallback or a faster preset starts a new file)."""
        self.frames = 0
        self.bytes = 0
        self._time_base = Fraction(1, fps)
        # Fragmented while open (what is written survives a crash up to the last fragment),
        # a regular MP4 with a normal index once closed. `fragmented=False` (merge, writing a file
        # that is renamed into place whole): a regular MP4 throughout, which can hold the edit list
        # that a stream with B-frames (dts before pts) needs to start at pts 0.
        options = {"movflags": "hybrid_fragmented"} if fragmented else {}
        self._container = av.open(str(path), "w", format="mp4", options=options)
        self._stream = self._container.add_mux_stream(codec, rate=fps, width=width, height=height)
        self._stream.time_base = self._time_base
        self._quiet_header = codec == "ffv1"

    def append(self, spool: PacketSpool) -> int:
        """Copy the spooled episode to the end of the file; returns its first frame's index."""
        start = self.frames
        self._mux(spool.read(), start)
        self.frames += spool.packets
        self.bytes += spool.bytes
        return start

    def append_kept(self, path: Path) -> None:
        """Copy an episode from a spool kept on disk (used to rebuild a file after a crash)."""
        with open(path, "rb") as f:
            records = list(_read_records(f))  # one episode; only during a rebuild
        self._mux(records, self.frames)
        self.frames += len(records)
        self.bytes += sum(len(r[0]) for r in records)

    def append_copied(self, packets: Iterable[tuple[bytes, int, int, bool]]) -> tuple[int, int]:
        """Copy an episode's packets taken from another MP4 (merge) to the end of the file.

        Each is (payload, pts, dts, key) in frames from the episode's first frame; dts is kept
        apart from pts because another writer's stream may reorder frames (B-frames). Returns the
        episode's first frame's index in this file and the packets copied.
        """
        start, count = self.frames, 0
        for payload, pts, dts, key in packets:
            packet = av.Packet(payload)
            packet.pts, packet.dts = start + pts, start + dts
            packet.time_base = self._time_base
            packet.is_keyframe = key
            packet.stream = self._stream
            self._container.mux(packet)
            count += 1
            self.bytes += len(payload)
        self.frames += count
        return start, count

    def _mux(self, records: Any, start: int) -> None:
        for payload, pts, key in records:
            packet = av.Packet(payload)
            packet.pts = packet.dts = start + pts
            packet.time_base = self._time_base
            packet.is_keyframe = key
            packet.stream = self._stream
            if self._quiet_header:
                # The MP4 muxer offers an FFV1 stream (a depth camera's exact mode) to a bitstream filter that
                # takes no FFV1 and says so at error level, once, when the header is written; the file is right.
                with av.logging.Capture():
                    self._container.mux(packet)
                self._quiet_header = False
            else:
                self._container.mux(packet)

    def close(self) -> None:
        self._container.close()


def rebuild_video_file(layout: Layout, camera: str, at: FileIndex, episodes: list[int], codec: str, fps: int,
                       width: int, height: int) -> None:
    """Rewrite a camera's MP4 from the kept spools of its episodes, in order.

    For a file whose encoder process died before closing it: the spools of every episode
    appended to the file are kept until it is closed (see the module docstring).
    """
    path = layout.video(camera, at)
    tmp = path.with_name(f".{path.name}.rebuild.mp4")
    file = VideoFile(tmp, at, codec, fps, width, height)
    for e in episodes:
        file.append_kept(layout.spool(camera, e))
    file.close()
    os.replace(tmp, path)
