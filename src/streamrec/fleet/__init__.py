"""The fleet stage: many datasets at once — merged into one, re-encoded, verified — in this process or on Ray.

`merge()` and `transcode()` (also `streamrec.merge`, `streamrec.transcode`) and `verify_many()`
split their work into tasks (one camera file, one episode, one dataset) and hand them to a runner
(`_runner`): without `ray=` they run one after the other in this process and Ray is never imported;
with `ray="local"` a Ray instance is started on this machine, with `"auto"` or an address an
existing cluster is joined. The results are the same either way. Ray is the optional extra
`streamrec[ray]`. Their results are documented with their types here.
"""

from ._merge import MergeReport, merge
from ._runner import TaskProgress
from ._transcode import TranscodeReport, transcode
from ._verify import verify_many, worst_exit_code

__all__ = ["MergeReport", "TaskProgress", "TranscodeReport", "merge", "transcode", "verify_many", "worst_exit_code"]
