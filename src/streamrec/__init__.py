"""streamrec: record multi-camera robot datasets (LeRobot v3.0) with streaming video encoding."""

from ._adapt import Adaptation
from ._bench import BenchReport, bench
from ._config import EncoderConfig, QueueFullPolicy
from ._errors import ConfigError, DatasetError, EncoderRestarted, FrameError, StreamrecError, WorkerError
from ._fallback import EncoderFallback
from ._info import CameraInfo, DatasetInfo, TaskInfo, info
from ._probe import ProbeReport, ProbeResult, probe
from ._recorder import CameraReport, CameraStatus, DatasetRecorder, EncodeProgress, EpisodeReport
from ._repair import RepairReport, repair
from ._sources import CameraSource, SourceError
from ._verify import EpisodeCameraCheck, Finding, Severity, VerifyReport, verify

__version__ = "0.1.0"

__all__ = [
    "Adaptation",
    "BenchReport",
    "CameraInfo",
    "CameraReport",
    "CameraSource",
    "CameraStatus",
    "ConfigError",
    "DatasetError",
    "DatasetInfo",
    "DatasetRecorder",
    "EncodeProgress",
    "EncoderConfig",
    "EncoderFallback",
    "EncoderRestarted",
    "EpisodeCameraCheck",
    "EpisodeReport",
    "Finding",
    "FrameError",
    "ProbeReport",
    "ProbeResult",
    "QueueFullPolicy",
    "RepairReport",
    "Severity",
    "SourceError",
    "StreamrecError",
    "TaskInfo",
    "VerifyReport",
    "WorkerError",
    "__version__",
    "bench",
    "info",
    "probe",
    "repair",
    "verify",
]
