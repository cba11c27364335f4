"""The record stage: `DatasetRecorder`, its settings, what it reports, and `repair()` after a crash."""

from ._config import RecorderConfig, RecordingOptions
from ._recorder import DatasetRecorder
from ._repair import RepairReport, repair
from ._reports import CameraReport, CameraStatus, EncodeProgress, EpisodeReport

__all__ = ["CameraReport", "CameraStatus", "DatasetRecorder", "EncodeProgress", "EpisodeReport", "RecorderConfig",
           "RecordingOptions", "RepairReport", "repair"]
