"""What `verify()` returns: the findings, and one check per episode and camera."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..dataset._findings import Finding, Severity


@dataclass(frozen=True, slots=True, kw_only=True)
class EpisodeVideoCheck:
    """What `verify` measured for one camera of one episode."""

    episode: int
    camera: str
    length: int
    """Frames the episode has according to `meta/episodes` (`length`)."""
    rows: int | None
    """Data rows with this `episode_index`; None if the data files could not be read."""
    frames: int | None
    """Video frames inside `[from_timestamp, to_timestamp)`; None if the MP4 could not be read."""
    dropped: int | None
    """Frames the recorder dropped (`videos/<key>/dropped_frames`); None when the column is absent."""
    from_timestamp_s: float | None
    to_timestamp_s: float | None
    video_file: str | None
    """MP4 holding the episode, relative to the dataset root."""
    data_file: str | None
    """Data parquet holding the episode's rows, relative to the dataset root."""
    interval_p50_ms: float | None = None
    """Median interval between capture times of consecutive rows (only with a capture_time column)."""
    interval_p99_ms: float | None = None
    skew_p50_ms: float | None = None
    """Median spread of one row's capture times across all cameras that have them."""
    skew_p99_ms: float | None = None
    status: str = "ok"
    """Worst severity of the findings about this episode and camera: "ok", "warning" or "error"."""

    @property
    def dropped_pct(self) -> float | None:
        """Dropped frames as a percentage of the episode's length."""
        if self.dropped is None or self.length <= 0:
            return None
        return 100.0 * self.dropped / self.length

    def to_dict(self) -> dict[str, Any]:
        return {
            "episode": self.episode, "camera": self.camera, "length": self.length, "rows": self.rows,
            "frames": self.frames, "dropped": self.dropped, "dropped_pct": _round(self.dropped_pct, 3),
            "from_timestamp_s": self.from_timestamp_s, "to_timestamp_s": self.to_timestamp_s,
            "video_file": self.video_file, "data_file": self.data_file,
            "interval_p50_ms": _round(self.interval_p50_ms, 3), "interval_p99_ms": _round(self.interval_p99_ms, 3),
            "skew_p50_ms": _round(self.skew_p50_ms, 3), "skew_p99_ms": _round(self.skew_p99_ms, 3),
            "status": self.status,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyReport:
    """Everything `verify` found. `healthy` means no errors (warnings are allowed)."""

    root: Path
    is_dataset: bool
    """False when `root` has no readable `meta/info.json`; nothing else was checked then."""
    fps: int | None
    episodes: int
    """Episodes listed in `meta/episodes`."""
    frames: int
    """Data rows read."""
    cameras: tuple[str, ...]
    """Video keys from `info.json`."""
    rows: tuple[EpisodeVideoCheck, ...]
    """One per episode and camera, in episode order."""
    findings: tuple[Finding, ...]
    """Errors first, then warnings, then info; each group in the order found."""
    elapsed_s: float

    @property
    def healthy(self) -> bool:
        """A dataset with no error findings (warnings and info are allowed)."""
        return self.is_dataset and not self.errors

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.WARNING)

    @property
    def codes(self) -> frozenset[str]:
        """Codes of all findings."""
        return frozenset(f.code for f in self.findings)

    @property
    def exit_code(self) -> int:
        """0 healthy (warnings allowed), 1 errors found, 2 not a dataset."""
        if not self.is_dataset:
            return 2
        return 1 if self.errors else 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: `summary`, `rows` and `findings`."""
        return {
            "root": str(self.root),
            "summary": {
                "is_dataset": self.is_dataset, "healthy": self.healthy, "exit_code": self.exit_code,
                "fps": self.fps, "episodes": self.episodes, "frames": self.frames, "cameras": list(self.cameras),
                "errors": len(self.errors), "warnings": len(self.warnings),
                "info": sum(f.severity is Severity.INFO for f in self.findings),
                "elapsed_s": round(self.elapsed_s, 3),
            },
            "rows": [r.to_dict() for r in self.rows],
            "findings": [f.to_dict() for f in self.findings],
        }

    def __repr__(self) -> str:
        state = "not a dataset" if not self.is_dataset else "healthy" if self.healthy else "problems found"
        return (f"<VerifyReport {str(self.root)!r} {state}: {self.episodes} episode(s), {len(self.cameras)} "
                f"camera(s), {len(self.errors)} error(s), {len(self.warnings)} warning(s)>")


def _round(value: float | None, digits: int) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)
