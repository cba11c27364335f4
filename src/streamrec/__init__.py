"""streamrec: record multi-camera robot datasets (LeRobot v3.0) with streaming video encoding.

What a script needs is here: the recorder and its settings, the errors, and the operations on a
dataset. The types the operations return are documented in their stage's package:
`streamrec.record` (episode reports, repair's report), `streamrec.check` (verify's and
summarize's), `streamrec.encode` (probe's, fallbacks, adaptations), `streamrec.fleet` (merge's,
transcode's), `streamrec.bench`.
"""

from ._errors import ConfigError, DatasetError, EncoderRestarted, FrameError, StreamrecError, WorkerError
from .bench import bench
from .check import summarize, verify
from .encode import DepthEncoderConfig, EncoderConfig, QueueFullPolicy, probe
from .fleet import merge, transcode, verify_many
from .record import DatasetRecorder, repair

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DatasetError",
    "DatasetRecorder",
    "DepthEncoderConfig",
    "EncoderConfig",
    "EncoderRestarted",
    "FrameError",
    "QueueFullPolicy",
    "StreamrecError",
    "WorkerError",
    "__version__",
    "bench",
    "merge",
    "probe",
    "repair",
    "summarize",
    "transcode",
    "verify",
    "verify_many",
]
