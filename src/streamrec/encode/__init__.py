"""The encode stage: one process per camera turns queued frames into the camera's MP4s.

Public here: the settings (`EncoderConfig`), `probe()` and what it reports, and the records of a
camera moving to another encoder (`EncoderFallback`) or a faster setting (`Adaptation`).
"""

from ._adapt import Adaptation
from ._config import EncoderConfig
from ._depth import DepthEncoderConfig
from ._fallback import EncoderFallback
from ._probe import EncoderProbe, ProbeReport, probe
from ._queue import QueueFullPolicy

__all__ = ["Adaptation", "DepthEncoderConfig", "EncoderConfig", "EncoderFallback", "EncoderProbe", "ProbeReport",
           "QueueFullPolicy", "probe"]
