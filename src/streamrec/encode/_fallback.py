"""A camera's episode encoder that falls back to the next encoder of its chain when one fails.

Runs inside the camera's encoder process. The chain comes from `_probe.choose_encoders`: the
encoder the camera starts with (say h264_nvenc), the working ones after it, and libsvtav1 last.

An encoder that fails to open is dropped from the chain and the next one is opened. One that
fails mid-episode (or at the flush) is dropped too, and its replacement re-encodes the episode
so far: the packets already spooled, decoded back, then the frames the failed encoder still
held. Those are kept here until their packets come out (only while a fallback exists; with
no-delay encoders that is no frame at all). So the episode loses no frame and is made by a
single encoder, which its MP4 needs: the encoder process starts a new file when the camera's
encoder changes. Re-encoding decoded frames costs one extra generation of compression loss for
the frames before the failure; the alternative, keeping every raw frame of the episode, would
cost ~1 GB per camera-minute of RAM.

A failed encoder stays dropped for the rest of the recording (the next episodes start on its
replacement): a driver that failed once would likely fail again, costing a re-encode each time.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import av

from .._errors import WorkerError
from ._codecs import error_text, open_codec, open_decoder
from ._config import EncoderConfig
from ._depth import DepthEncoderConfig


@dataclass(frozen=True, slots=True)
class EncoderFallback:
    """A camera's encoder failed and the next one of its chain took over; no frame was lost."""

    failed: str
    """The encoder that failed (FFmpeg name)."""
    replacement: str
    """The encoder that took over."""
    at_frame: int | None
    """Frame of the episode at which it failed (frames before it were re-encoded); None: it failed to open."""
    error: str
    """FFmpeg's error, e.g. "Cannot load libcuda.so.1"."""

    def __str__(self) -> str:
        when = "to open" if self.at_frame is None else f"at frame {self.at_frame}"
        redone = f"; it re-encoded the episode's first {self.at_frame} frames" if self.at_frame else ""
        return f"{self.failed} failed {when} ({self.error}); {self.replacement} took over{redone}"


class Spool(Protocol):
    """What EpisodeCodec needs of the encoder process's packet spool (`dataset._mp4.PacketSpool`)."""

    path: Path
    packets: int

    def write(self, packets: list[av.Packet]) -> None: ...
    def read(self) -> Iterator[tuple[bytes, int, bool]]: ...
    def discard(self) -> None: ...


class EpisodeCodec:
    """Encodes one episode into a spool at `spool_path` with `chain[0]`, falling back along `chain` on failure.

    `chain` is the caller's list, kept across episodes: a failed encoder is removed from it.
    Fallbacks are appended to `events`. When the last encoder of the chain fails, its error is
    raised as it is.
    """

    def __init__(self, chain: list[EncoderConfig], width: int, height: int, fps: int, threads: int | None,
                 spool_path: Path, make_spool: Callable[[Path], Spool], events: list[EncoderFallback],
                 camera: str, busy: Callable[[], None] = lambda: None) -> None:
        """`busy` is called about once a second while a fallback re-encodes the episode so far
        (seconds for a long episode), so that a caller waiting for the flush knows it is alive."""
        self._chain = chain
        self._busy = busy
        self._geometry = (width, height, fps, threads)
        self._make_spool = make_spool
        self._events = events
        self._camera = camera
        self._pending: deque[av.VideoFrame] = deque()
        """Frames given to the encoder whose packets have not come out yet."""
        self._fed = 0
        self._codec: av.VideoCodecContext | None = None
        while self._codec is None:
            try:
                self._codec = self._open()
            except _OpenError as e:
                self._drop_failed(e, None)
        self._spool_codec = chain[0].stream_codec
        self.spool = make_spool(spool_path)

    @property
    def encoder(self) -> EncoderConfig:
        """The encoder making this episode."""
        return self._chain[0]

    def encode(self, frame: av.VideoFrame) -> None:
        """Encode the episode's next frame (its pts is set here)."""
        try:
            self._feed(frame, self.spool)
        except av.FFmpegError as e:
            self._switch(e, self._fed)

    def restart(self, threads: int | None) -> None:
        """Go on with a new instance of the same encoder using `threads` codec threads.

        The current one is flushed into the spool first, so the episode's packets stay in order;
        the new one starts with a keyframe, as every episode does, and the same stream parameters.
        """
        try:
            self.spool.write(self._codec.encode(None))
        except av.FFmpegError as e:
            self._switch(e, self._fed)  # its replacement re-encodes the episode so far
            return
        self._pending.clear()
        width, height, fps, _ = self._geometry
        self._geometry = (width, height, fps, threads)
        try:
            self._codec = self._open()
        except _OpenError as e:
            self._switch(e, self._fed)

    def finish(self) -> Spool:
        """Flush the encoder; returns the spool holding every frame's packet."""
        while True:
            try:
                self.spool.write(self._codec.encode(None))
                break
            except av.FFmpegError as e:
                self._switch(e, self._fed)
        self._codec = None
        self._pending.clear()
        return self.spool

    def abort(self) -> None:
        """Drop the episode: drain the encoder (so it shuts down cleanly) and delete the spool."""
        codec, self._codec = self._codec, None
        if codec is not None and self._fed:
            with contextlib.suppress(av.FFmpegError):  # its packets are not wanted; only the shutdown matters
                codec.encode(None)
        self._pending.clear()
        self.spool.discard()

    # -- internals --------------------------------------------------------------------------------

    def _open(self) -> av.VideoCodecContext:
        # All of FFmpeg's messages, not just the exception's last line: for a hardware encoder
        # the first one usually says what is missing ("Could not find a valid device").
        with av.logging.Capture() as logs:
            try:
                config = self._chain[0]
                if isinstance(config, DepthEncoderConfig):  # a depth camera's codec (see _depth)
                    return config.open_codec(*self._geometry)
                return open_codec(config, *self._geometry)
            except av.FFmpegError as e:
                raise _OpenError(error_text(e, logs)) from e

    def _feed(self, frame: av.VideoFrame, spool: Spool) -> None:
        frame.pts = self._fed
        if len(self._chain) > 1:  # only a fallback needs the frames back
            self._pending.append(frame)
        packets = self._codec.encode(frame)
        spool.write(packets)
        for _ in range(min(len(packets), len(self._pending))):
            self._pending.popleft()
        self._fed += 1

    def _drop_failed(self, error: BaseException, at_frame: int | None) -> None:
        """Remove the failed encoder from the chain and record it; re-raise when none is left."""
        if len(self._chain) == 1:  # no fallback left: FFmpeg's own exception, as without a chain
            raise error.__cause__ if isinstance(error, _OpenError) and error.__cause__ else error
        failed = self._chain.pop(0)
        # Reported with the episode (the recorder logs it): this process has no log handler.
        self._events.append(EncoderFallback(failed.encoder, self._chain[0].encoder, at_frame, _describe(error)))

    def _switch(self, error: BaseException, at_frame: int) -> None:
        """The encoder failed mid-episode: re-encode the episode so far with the next one that works."""
        self._codec = None
        while True:
            self._drop_failed(error, at_frame)
            try:
                self._codec = self._open()
                self._reencode()
                return
            except (av.FFmpegError, _OpenError) as e:
                self._codec = None
                error = e

    def _reencode(self) -> None:
        old = self.spool
        held = list(self._pending)
        self._pending.clear()
        self._fed = 0
        new = self._make_spool(old.path.with_name(f"{old.path.stem}.fallback{old.path.suffix}"))
        try:
            said = time.monotonic()
            for frame in self._decoded(old):
                self._feed(frame, new)
                if time.monotonic() - said > 1.0:
                    self._busy()
                    said = time.monotonic()
            if self._fed != old.packets:
                raise WorkerError(f"{self._camera}: only {self._fed} of the {old.packets} frames encoded before "
                                  "the encoder failed decode back; the episode cannot be kept whole")
            for frame in held:
                self._feed(frame, new)
        except BaseException:
            new.discard()
            self._pending = deque(held)  # the next encoder of the chain starts from the same frames
            raise
        old.discard()
        os.replace(new.path, old.path)
        new.path = old.path
        self.spool = new
        self._spool_codec = self._chain[0].stream_codec

    def _decoded(self, spool: Spool) -> Iterator[av.VideoFrame]:
        """The frames of the spooled packets. A decoding error is the failed encoder's output
        being unreadable, not the next encoder failing: it is raised as WorkerError."""
        try:
            decoder = open_decoder(self._spool_codec)
            for payload, _, _ in spool.read():
                yield from decoder.decode(av.Packet(payload))
            yield from decoder.decode(None)
        except av.FFmpegError as e:
            raise WorkerError(f"{self._camera}: the packets of the failed encoder do not decode back ({e}); "
                              "the episode cannot be kept whole") from e


class _OpenError(Exception):
    """An encoder failed to open; the message is FFmpeg's text for it."""


def _describe(error: BaseException) -> str:
    if isinstance(error, _OpenError):
        return str(error)
    log_line: Any = getattr(error, "log", None)
    if isinstance(log_line, tuple) and len(log_line) == 3 and log_line[2]:
        return f"{str(log_line[2]).strip()} ({getattr(error, 'strerror', None) or error})"
    return str(error)
