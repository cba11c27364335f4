"""The check stage: is a recorded dataset what the LeRobot loader needs, and what does it hold.

`verify()` decodes every video and checks it against the tables; `summarize()` reads only the
tables and video headers. Their results are documented with their types here.
"""

from ..dataset._findings import Finding, Severity
from ._report import EpisodeVideoCheck, VerifyReport
from ._summary import CameraSummary, DatasetSummary, TaskSummary, summarize
from ._verify import verify

__all__ = ["CameraSummary", "DatasetSummary", "EpisodeVideoCheck", "Finding", "Severity", "TaskSummary",
           "VerifyReport", "summarize", "verify"]
