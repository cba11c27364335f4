"""What the recorder and one camera's encoder process say to each other.

    recorder (EncoderWorker)                        encoder process sr-<camera> (_child.serve)
    ─────────────────────────                       ──────────────────────────────────────────
    EncoderSpec, once at start  ───── frame pipe ─▶ open the camera's first encoder
    FrameReady(slot, buffer)    ───── frame pipe ─▶ encode the frame in that shared-memory buffer
    EndEpisode / DiscardEpisode /
      EncodeSpilled / Close     ───── frame pipe ─▶ handled after every frame sent before them
                                ◀──── reply pipe ── Done(request_id, value) | Failed(request_id, traceback)
                                ◀──── reply pipe ── Progress (EncodeSpilled)
                                ◀─ queue header ─── work done, slots encoded (liveness and flush progress)

Requests share the frames' pipe, so they arrive after every frame sent before them, and they are
answered in order. Every request carries an id; its answer carries the same id. A failure while
taking frames is answered at once with `Failed(None, ...)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ..dataset._layout import FileIndex
from ..dataset._stats import Stats
from ._adapt import Adaptation
from ._config import EncoderConfig
from ._depth import DepthEncoderConfig
from ._fallback import EncoderFallback


@dataclass(frozen=True, slots=True)
class EncoderSpec:
    """Everything the encoder process needs, sent to it once at start."""

    camera: str
    height: int
    width: int
    fps: int
    encoder: EncoderConfig | DepthEncoderConfig
    """A depth camera's is a DepthEncoderConfig: its frames are uint16 millimetres (see `_depth`)."""
    encoder_threads: int | None
    root: Path
    start_at: FileIndex
    """The MP4 its first episode goes to."""
    limit_bytes: int
    """An MP4 that would grow past this is closed and the episode starts the next file."""
    chunks_size: int
    nice: int
    streaming: bool
    """Encode frames as they arrive; otherwise write them as PNGs and encode when asked."""
    spilled_threads: int
    """Codec threads for encoding PNGs when `encoder_threads` is None. Every camera encodes
    at once then, so a share of the CPUs each: measured here on 640x480 footage, SVT-AV1 with
    one thread (`lp=1`) used 8.8 instead of 13.0 ms of CPU per frame on one clip and 17.0
    instead of 20.7 on another, against its default of one thread per CPU."""
    fallbacks: tuple[EncoderConfig, ...] = ()
    """Encoders to switch to, in order, when `encoder` fails (see `_fallback`)."""
    pre_encode: bool = False
    """PNG path with batches of one: encode the episode being recorded at idle priority (see `_idle`)."""
    adapt: bool = False
    """Streaming: move to faster settings when the queue stays over a third full (see `_adapt`)."""
    queue_size: int = 30
    cameras: int = 1
    """Cameras encoding at once (how many threads the camera may have, see `_adapt.fewer_threads`)."""
    cpu_share: float | None = None
    """With `adapt`: CPUs this camera's encoder may use (`_budget.camera_shares`), checked in its first episode."""
    start_adaptation: Adaptation | None = None
    """The recorder started this camera on a faster setting than asked (`_budget.plan_start`): reported
    with its first episode."""

    @property
    def depth(self) -> bool:
        return isinstance(self.encoder, DepthEncoderConfig)

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """Of a queued frame: (H, W, 3) RGB, or (H, W, 1) depth."""
        return (self.height, self.width, 1 if self.depth else 3)

    @property
    def frame_dtype(self) -> str:
        return "uint16" if self.depth else "uint8"


# -- recorder -> encoder process --------------------------------------------------------------


class FrameReady(NamedTuple):
    """The frame of video slot `slot` is in queue buffer `buffer` (a tuple: one per frame per camera)."""

    slot: int
    buffer: int


@dataclass(frozen=True, slots=True)
class EndEpisode:
    """Complete the open episode with `frames` video frames; answered with an `EpisodeEnd`."""

    request_id: int
    frames: int
    episode_index: int


@dataclass(frozen=True, slots=True)
class DiscardEpisode:
    """Drop the open episode (re-record, or another camera failed)."""

    request_id: int


@dataclass(frozen=True, slots=True)
class EncodeSpilled:
    """PNG path: encode kept episodes, given as (episode_index, rows), in that order; answered with a
    list of `VideoEpisode`."""

    request_id: int
    episodes: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class Close:
    """Drop any open episode, close the current MP4, end the process."""

    request_id: int


Request = EndEpisode | DiscardEpisode | EncodeSpilled | Close


# -- encoder process -> recorder --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Done:
    request_id: int
    value: Any = None


@dataclass(frozen=True, slots=True)
class Failed:
    request_id: int | None
    """The request that failed; None for a failure while taking frames."""
    traceback: str
    """The exception as formatted in the encoder process."""


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a long request (`EncodeSpilled`) has got: sent a few times a second."""

    request_id: int
    episode_index: int
    frames_done: int


Reply = Done | Failed | Progress


# -- what comes back --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VideoEpisode:
    """Where one camera's video of an episode landed."""

    camera: str
    episode_index: int
    file: FileIndex
    from_frame: int
    """Index of the episode's first frame inside the MP4 file."""
    frames: int
    """Video frames written: always the episode's row count."""
    flush_s: float
    """Time spent encoding after the episode ended: the frames the encoder still held when
    streaming, every frame when encoding spilled PNGs."""
    append_s: float
    """Time spent copying the episode's packets into the camera's MP4."""
    encoders: tuple[EncoderConfig, ...] = ()
    """The camera's encoder chain after this episode: the one that made it first, then its fallbacks."""
    fallbacks: tuple[EncoderFallback, ...] = ()
    """Encoders that failed since the previous saved episode, and what took over."""
    adaptations: tuple[Adaptation, ...] = ()
    """Faster settings taken since the previous saved episode (`adapt_on_overload`)."""


@dataclass(frozen=True, slots=True)
class EpisodeEnd:
    """The encoder process's answer to `EndEpisode`."""

    camera: str
    stats: Stats
    """Pixel statistics of a sample of the frames it received."""
    video: VideoEpisode | None
    """The encoded episode; None when its PNGs wait to be encoded (`streaming_encoding=False`)."""
    encoded_while_recording: int = 0
    """PNG path: frames the idle-priority encoder had encoded when the episode ended."""
