"""What the recorder reports: per saved episode, per camera, live, and while PNG episodes are encoded."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..encode._adapt import Adaptation
from ..encode._fallback import EncoderFallback


@dataclass(frozen=True, slots=True)
class CameraReport:
    """One camera's part of a saved episode."""

    camera: str
    frames: int
    """Video frames written (always equal to the episode's rows)."""
    dropped: int
    """Frames dropped because the encoder queue was full; each slot holds the previous frame."""
    dropped_slots: tuple[int, ...]
    """The rows (video slots) of those frames, in order."""
    max_queue_depth: int
    video_file: Path | None
    """The MP4 holding the episode; None (like the fields below) while the episode's video
    waits as PNGs for its batch to be encoded (`batch_encoding_size` > 1)."""
    from_timestamp: float | None
    to_timestamp: float | None
    flush_s: float | None
    """Encoding time after the episode ended: the frames the encoder still held when streaming,
    the whole episode from its PNGs otherwise."""
    append_s: float | None
    """Time taken to copy the episode's packets into the camera's MP4."""
    encoder: str | None = None
    """The FFmpeg encoder that made this episode's video (None while it waits as PNGs)."""
    fallbacks: tuple[EncoderFallback, ...] = ()
    """Encoders that failed for this camera since the previous episode, and what took over."""
    encoded_while_recording: int | None = None
    """PNG path: frames encoded, at idle priority, before the episode was saved (saving encoded the rest
    from the PNGs); None when streaming, where every frame is encoded while recording."""
    adaptations: tuple[Adaptation, ...] = ()
    """Faster settings this camera moved to since the previous episode (`adapt_on_overload`)."""


@dataclass(frozen=True, slots=True)
class EpisodeReport:
    """What `save_episode()` did."""

    episode_index: int
    frames: int
    duration_s: float
    tasks: tuple[str, ...]
    cameras: Mapping[str, CameraReport]
    save_s: float
    """Wall time spent inside save_episode()."""
    videos_pending: bool = False
    """The episode is saved (rows and PNGs on disk) but its videos wait for the batch encode."""
    encoded_episodes: tuple[int, ...] = ()
    """Episodes whose videos were encoded and completed during this call."""
    nonfinite: Mapping[str, int] = field(default_factory=dict)
    """Per feature: NaN and infinite values recorded in this episode (only with `allow_nonfinite`)."""

    @property
    def dropped(self) -> int:
        """Dropped frames summed over cameras."""
        return sum(c.dropped for c in self.cameras.values())


@dataclass(frozen=True, slots=True)
class EncodeProgress:
    """Passed to `save_episode`'s and `finalize`'s progress callback while an episode's frames are encoded
    after the episode ended: the backlog of a streaming encoder that fell behind, or saved PNG episodes."""

    camera: str
    episode_index: int
    frames_done: int
    frames_total: int


ProgressCallback = Callable[[EncodeProgress], None]


@dataclass(frozen=True, slots=True)
class CameraStatus:
    """Live view of one camera's queue during an episode (for status displays)."""

    camera: str
    queue_depth: int
    frames_in: int
    dropped: int
