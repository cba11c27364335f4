"""What is wrong with a dataset's files, as the reader and `verify` report it."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Severity(str, enum.Enum):
    """How bad a finding is. Only errors make a dataset unhealthy."""

    ERROR = "error"
    """The dataset will load wrong data, fail to load, or is not what the recording should have produced."""
    WARNING = "warning"
    """Loads correctly, but something is off and worth a look."""
    INFO = "info"
    """Worth knowing; nothing to fix."""

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One thing noticed about a dataset."""

    severity: Severity
    code: str
    """Stable identifier, e.g. `video_truncated`; the message may change, the code does not."""
    message: str
    episode: int | None = None
    """Episode it concerns; None for the dataset or a whole file."""
    camera: str | None = None
    """Video key it concerns; None when it is not about one camera."""
    file: str | None = None
    """File it concerns, relative to the dataset root; None when it is not about one file."""
    row: int | None = None
    """Row of the episode it concerns (0-based frame index); None when it is not about one row."""

    def to_dict(self) -> dict[str, Any]:
        return {"severity": self.severity.value, "code": self.code, "episode": self.episode,
                "camera": self.camera, "file": self.file, "row": self.row, "message": self.message}


class Findings(list):
    """Findings in the order found, with one helper per severity."""

    def add(self, severity: Severity, code: str, message: str, **where: Any) -> None:
        self.append(Finding(severity=severity, code=code, message=message, **where))

    def error(self, code: str, message: str, **where: Any) -> None:
        self.add(Severity.ERROR, code, message, **where)

    def warning(self, code: str, message: str, **where: Any) -> None:
        self.add(Severity.WARNING, code, message, **where)

    def note(self, code: str, message: str, **where: Any) -> None:
        self.add(Severity.INFO, code, message, **where)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self if f.severity is Severity.ERROR]
