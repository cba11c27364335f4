"""`RobotSource`: the table features read once per tick after the cameras (observation.state, action)."""

from __future__ import annotations

import abc
import logging
from typing import Any

import numpy as np

log = logging.getLogger("streamrec")


class RobotSource(abc.ABC):
    """Table features read once per tick, after the cameras: `observation.state` and `action`."""

    @property
    @abc.abstractmethod
    def features(self) -> dict[str, dict[str, Any]]:
        """Feature specs for `DatasetRecorder.create`."""

    @abc.abstractmethod
    def read(self) -> dict[str, np.ndarray]:
        """One value per feature for the current tick."""

    def start_episode(self, index: int) -> None:  # noqa: B027 - only a simulated robot has a scene to reset
        """Called before episode `index` (0-based) is recorded, again if it is recorded again."""
